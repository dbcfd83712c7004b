//! Login, registration, two-factor login, password change and admin-created users (§3.4–3.7).

use actix_web::{web, HttpRequest, HttpResponse};
use cashgrid_actors::engine::portal::{LoginOutcome, RegisterOutcome, Registration};
use serde::Serialize;
use serde_json::Value;

use super::{portal_error, session, text_field, token_answer};
use crate::body::read_json;
use crate::error::ApiError;
use crate::AppState;

/// Keys a registration body may carry: the customer columns, the password and the captcha.
/// `roles`, `status`, `id`, `created` and `twofasecret` are columns the server sets itself.
const REGISTRATION_KEYS: [&str; 10] =
    ["email", "password", "captcha", "display_name", "info", "roles", "status", "id", "created", "twofasecret"];

#[derive(Serialize)]
struct Result_ {
    result: &'static str,
}

fn result(text: &'static str) -> HttpResponse {
    crate::json_ok(Result_ { result: text })
}

/// `POST /auth`: every outcome is a 200.
pub async fn login(state: web::Data<AppState>, request: HttpRequest, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    let body = read_json(&request, payload).await?;
    let email = text_field(&body, "user").unwrap_or_default();
    let password = text_field(&body, "password").unwrap_or_default();
    let code = text_field(&body, "token");
    let outcome = state.engine.login(&email, &password, code.as_deref()).await.map_err(ApiError::from_fault)?;
    if matches!(outcome, LoginOutcome::WrongCredentials | LoginOutcome::WrongTwofa) {
        // Where failed logins come from is what an operator (or fail2ban) needs.
        let client = crate::client_origin::of(&request, &state.trusted_proxies).address;
        tracing::info!(client = ?client, "portal login refused");
    }
    Ok(match outcome {
        LoginOutcome::Token(token) => token_answer(token),
        LoginOutcome::WrongCredentials => result("Sorry, wrong user or password."),
        LoginOutcome::WrongTwofa => result("Sorry, the token was incorrect."),
        LoginOutcome::NeedTwofa => {
            #[derive(Serialize)]
            struct NeedTwofa {
                twofa: &'static str,
            }
            crate::json_ok(NeedTwofa { twofa: "Need 2FA token." })
        }
    })
}

/// `info` as the text the original stores: a string as it is, other JSON serialised.
fn info_text(value: Option<&Value>) -> Option<String> {
    match value {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.clone()),
        Some(other) => Some(other.to_string()),
    }
}

/// `POST /auth/register`: answers 200 with `{"result":…}` or `{"token":…}`.
pub async fn register(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_json(&request, payload).await?;
    let unknown_column = match &body {
        Value::Object(map) => map.keys().find(|key| !REGISTRATION_KEYS.contains(&key.as_str())).cloned(),
        _ => None,
    };
    let registration = Registration {
        email: body.get("email").and_then(Value::as_str).map(str::to_owned),
        password: body.get("password").and_then(Value::as_str).map(str::to_owned),
        display_name: body.get("display_name").and_then(Value::as_str).map(str::to_owned),
        info: info_text(body.get("info")),
        unknown_column,
    };
    match state.engine.register(registration).await.map_err(|error| portal_error(state.error_status, error))? {
        RegisterOutcome::Token(token) => Ok(token_answer(token)),
        RegisterOutcome::EmailRegistered => Ok(result("Sorry, this email is already registered.")),
        RegisterOutcome::BadPassword => Ok(result("Sorry, bad password")),
        RegisterOutcome::CaptchaFailed => Ok(result("Sorry, I don`t think you are a real person! Please try again.")),
    }
}

/// `GET /auth/twofa`: a new pending secret and its provisioning URL.
pub async fn begin_twofa(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let session = session(&state, &request).await?;
    let setup = state.engine.begin_twofa(&session).await.map_err(|error| portal_error(state.error_status, error))?;
    #[derive(Serialize)]
    struct Setup {
        secret: String,
        url: String,
    }
    Ok(crate::json_ok(Setup { secret: setup.secret, url: setup.url }))
}

/// `POST /auth/twofa` `{"token":…}`: two-factor login on; a new session with the `twofa` role.
pub async fn enable_twofa(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let session = session(&state, &request).await?;
    let body = read_json(&request, payload).await?;
    let code = text_field(&body, "token");
    let token = state
        .engine
        .enable_twofa(&session, code.as_deref())
        .await
        .map_err(|error| portal_error(state.error_status, error))?;
    Ok(token_answer(token))
}

/// `DELETE /auth/twofa`: two-factor login off; a new session.
pub async fn disable_twofa(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let session = session(&state, &request).await?;
    let token = state.engine.disable_twofa(&session).await.map_err(|error| portal_error(state.error_status, error))?;
    Ok(token_answer(token))
}

/// `PUT /auth/changepw` `{"oldPassword","newPassword"}`: a new session with status 1.
pub async fn change_password(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let session = session(&state, &request).await?;
    let body = read_json(&request, payload).await?;
    let old = body.get("oldPassword").and_then(Value::as_str).map(str::to_owned);
    let new = body.get("newPassword").and_then(Value::as_str).map(str::to_owned);
    let token = state
        .engine
        .change_password(&session, old, new)
        .await
        .map_err(|error| portal_error(state.error_status, error))?;
    Ok(token_answer(token))
}

/// `POST /auth/create` `{"email"}` (admin): the new user's initial password.
pub async fn create_user(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let session = session(&state, &request).await?;
    let body = read_json(&request, payload).await?;
    let email = body.get("email").and_then(Value::as_str).map(str::to_owned);
    let created =
        state.engine.create_user(&session, email).await.map_err(|error| portal_error(state.error_status, error))?;
    #[derive(Serialize)]
    struct Created {
        email: String,
        initialpassword: String,
    }
    Ok(crate::json_ok(Created { email: created.email, initialpassword: created.initial_password }))
}
