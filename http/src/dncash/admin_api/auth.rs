//! Login, registration, two-factor login, password change and admin-created users (§3.4–3.7).

use actix_web::{web, HttpRequest, HttpResponse};
use cashgrid_actors::engine::portal::{LoginOutcome, RegisterOutcome, Registration};
use serde::Serialize;
use serde_json::Value;
use utoipa::{OpenApi, ToSchema};

use super::{portal_error, session, text_field, token_answer, TokenAnswer};
use crate::body::read_json;
use crate::error::{ApiError, GlobalError};
use crate::openapi::schemas::{BodyFaults, Faults, SessionFaults};
use crate::AppState;

/// Login, registration, two-factor login, password change and new users.
#[derive(OpenApi)]
#[openapi(paths(login, register, begin_twofa, enable_twofa, disable_twofa, change_password, create_user))]
pub(super) struct Document;

/// `POST /auth`: the user's e-mail address and password, and the TOTP code once two-factor
/// login is on.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the body in the documents; `login` reads it field by field.
struct Login {
    #[schema(format = Email)]
    user: String,
    password: String,
    /// The current TOTP code.
    #[schema(required = false)]
    token: Option<String>,
}

/// `POST /auth/register`: a new user (only with `CAPTCHA_OFF`). Keys other than these and
/// the customer's columns are refused.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the body in the documents; `register` reads it field by field.
struct Registration_ {
    #[schema(format = Email)]
    email: String,
    /// At least 8 characters.
    password: String,
    /// The reCAPTCHA answer; cashgrid cannot check one, see `CAPTCHA_OFF`.
    #[schema(required = false)]
    captcha: Option<String>,
    #[schema(required = false)]
    display_name: Option<String>,
    /// Any JSON; stored as JSON text.
    #[schema(required = false)]
    info: Option<Value>,
}

/// `POST /auth/twofa`: the current TOTP code of the pending secret.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the body in the documents; `enable_twofa` reads it field by field.
struct TwofaCode {
    token: String,
}

/// `PUT /auth/changepw`.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the body in the documents; `change_password` reads it field by field.
struct PasswordChange {
    #[schema(rename = "oldPassword")]
    old_password: String,
    /// At least 8 characters, not the old one.
    #[schema(rename = "newPassword")]
    new_password: String,
}

/// `POST /auth/create`.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the body in the documents; `create_user` reads it field by field.
struct NewUser {
    #[schema(format = Email)]
    email: String,
}

/// A login or registration that did not give a session; a 200, as in the original.
#[derive(Serialize, ToSchema)]
struct Refusal {
    result: &'static str,
}

/// The password was right; the TOTP code is missing.
#[derive(Serialize, ToSchema)]
struct NeedTwofa {
    /// `Need 2FA token.`
    twofa: &'static str,
}

/// Every answer of `POST /auth` and `POST /auth/register`.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
enum LoginAnswer {
    Session(TokenAnswer),
    Refusal(Refusal),
    NeedTwofa(NeedTwofa),
}

/// A new pending two-factor secret.
#[derive(Serialize, ToSchema)]
struct TwofaSetup {
    /// Base32.
    secret: String,
    /// The `otpauth://` provisioning URL.
    url: String,
}

/// A user made by an admin, with its initial password.
#[derive(Serialize, ToSchema)]
struct CreatedUser {
    email: String,
    initialpassword: String,
}

/// Keys a registration body may carry: the customer columns, the password and the captcha.
/// `roles`, `status`, `id`, `created` and `twofasecret` are columns the server sets itself.
const REGISTRATION_KEYS: [&str; 10] =
    ["email", "password", "captcha", "display_name", "info", "roles", "status", "id", "created", "twofasecret"];

fn result(text: &'static str) -> HttpResponse {
    crate::json_ok(LoginAnswer::Refusal(Refusal { result: text }))
}

/// `POST /auth`: every outcome is a 200.
#[utoipa::path(
    post,
    path = "/dnapi/admin/v1/auth",
    tag = "Admin API",
    request_body(content = Login, content_type = "application/json"),
    responses(
        (status = 200, description = "A session (`token`), `{\"result\":\"Sorry, wrong user or password.\"}`, \
            `{\"result\":\"Sorry, the token was incorrect.\"}` or `{\"twofa\":\"Need 2FA token.\"}`. After the n-th \
            failed login in a row the answer waits 2^(n-1)-1 s (at most 300 s).", body = LoginAnswer),
        (status = 400, description = "The body is no JSON object or array.", body = GlobalError),
        BodyFaults,
        Faults,
    )
)]
pub async fn login(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_json(&request, payload).await?;
    let email = text_field(&body, "user").unwrap_or_default();
    let password = text_field(&body, "password").unwrap_or_default();
    let code = text_field(&body, "token");
    let outcome =
        state.engine.portal().login(&email, &password, code.as_deref()).await.map_err(ApiError::from_fault)?;
    if matches!(outcome, LoginOutcome::WrongCredentials | LoginOutcome::WrongTwofa) {
        // Where failed logins come from is what an operator (or fail2ban) needs.
        let client = crate::client_origin::of(&request, &state.trusted_proxies).address;
        tracing::info!(client = ?client, "portal login refused");
    }
    Ok(match outcome {
        LoginOutcome::Token(token) => crate::json_ok(LoginAnswer::Session(TokenAnswer { token })),
        LoginOutcome::WrongCredentials => result("Sorry, wrong user or password."),
        LoginOutcome::WrongTwofa => result("Sorry, the token was incorrect."),
        LoginOutcome::NeedTwofa => crate::json_ok(LoginAnswer::NeedTwofa(NeedTwofa { twofa: "Need 2FA token." })),
    })
}

/// A new user's e-mail address; a blank one counts as missing (`ER_BAD_NULL_ERROR`). MySQL
/// took `""` from the original, and the user it made could never be named in a path again
/// (`/customers//twofa` is read as `/customers/twofa`).
fn email_field(body: &Value) -> Option<String> {
    body.get("email").and_then(Value::as_str).filter(|email| !email.trim().is_empty()).map(str::to_owned)
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
#[utoipa::path(
    post,
    path = "/dnapi/admin/v1/auth/register",
    tag = "Admin API",
    request_body(content = Registration_, content_type = "application/json"),
    responses(
        (status = 200, description = "A session, or a refusal: `Sorry, this email is already registered.`, `Sorry, bad password`, \
            or the captcha answer (registration is off unless `CAPTCHA_OFF`).", body = LoginAnswer),
        (status = 400, description = "An unknown key (`ER_BAD_FIELD_ERROR: …`), a missing or too long e-mail address, \
            or a body that is no JSON object or array.", body = GlobalError),
        BodyFaults,
        Faults,
    )
)]
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
        email: email_field(&body),
        password: body.get("password").and_then(Value::as_str).map(str::to_owned),
        display_name: body.get("display_name").and_then(Value::as_str).map(str::to_owned),
        info: info_text(body.get("info")),
        unknown_column,
    };
    match state.engine.portal().register(registration).await.map_err(|error| portal_error(state.error_status, error))? {
        RegisterOutcome::Token(token) => Ok(crate::json_ok(LoginAnswer::Session(TokenAnswer { token }))),
        RegisterOutcome::EmailRegistered => Ok(result("Sorry, this email is already registered.")),
        RegisterOutcome::BadPassword => Ok(result("Sorry, bad password")),
        RegisterOutcome::CaptchaFailed => Ok(result("Sorry, I don`t think you are a real person! Please try again.")),
    }
}

/// `GET /auth/twofa`: a new pending secret and its provisioning URL.
#[utoipa::path(
    get,
    path = "/dnapi/admin/v1/auth/twofa",
    tag = "Admin API",
    responses((status = 200, description = "A new pending secret; `POST` confirms it.", body = TwofaSetup), SessionFaults),
    security(("portal_jwt" = []))
)]
pub async fn begin_twofa(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let session = session(&state, &request).await?;
    let setup =
        state.engine.portal().begin_twofa(&session).await.map_err(|error| portal_error(state.error_status, error))?;
    Ok(crate::json_ok(TwofaSetup { secret: setup.secret, url: setup.url }))
}

/// `POST /auth/twofa` `{"token":…}`: two-factor login on; a new session with the `twofa` role.
#[utoipa::path(
    post,
    path = "/dnapi/admin/v1/auth/twofa",
    tag = "Admin API",
    request_body(content = TwofaCode, content_type = "application/json"),
    responses(
        (status = 200, description = "Two-factor login is on: a new session.", body = TokenAnswer),
        (status = 400, description = "`Invalid 2FA token`, or a body that is no JSON object or array.", body = GlobalError),
        BodyFaults,
        SessionFaults,
    ),
    security(("portal_jwt" = []))
)]
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
        .portal()
        .enable_twofa(&session, code.as_deref())
        .await
        .map_err(|error| portal_error(state.error_status, error))?;
    Ok(token_answer(token))
}

/// `DELETE /auth/twofa`: two-factor login off; a new session.
#[utoipa::path(
    delete,
    path = "/dnapi/admin/v1/auth/twofa",
    tag = "Admin API",
    responses((status = 200, description = "Two-factor login is off: a new session.", body = TokenAnswer), SessionFaults),
    security(("portal_jwt" = []))
)]
pub async fn disable_twofa(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let session = session(&state, &request).await?;
    let token =
        state.engine.portal().disable_twofa(&session).await.map_err(|error| portal_error(state.error_status, error))?;
    Ok(token_answer(token))
}

/// `PUT /auth/changepw` `{"oldPassword","newPassword"}`: a new session with status 1.
#[utoipa::path(
    put,
    path = "/dnapi/admin/v1/auth/changepw",
    tag = "Admin API",
    request_body(content = PasswordChange, content_type = "application/json"),
    responses(
        (status = 200, description = "A new session (status 1).", body = TokenAnswer),
        (status = 400, description = "`Sorry, bad new password`, `Sorry, the new password cannot be the same as the old password.`, \
            or a body that is no JSON object or array.", body = GlobalError),
        (status = 403, description = "`Sorry, the password is incorrect.`", body = GlobalError),
        BodyFaults,
        SessionFaults,
    ),
    security(("portal_jwt" = []))
)]
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
        .portal()
        .change_password(&session, old, new)
        .await
        .map_err(|error| portal_error(state.error_status, error))?;
    Ok(token_answer(token))
}

/// `POST /auth/create` `{"email"}` (admin): the new user's initial password.
#[utoipa::path(
    post,
    path = "/dnapi/admin/v1/auth/create",
    tag = "Admin API",
    request_body(content = NewUser, content_type = "application/json"),
    responses(
        (status = 200, description = "The new user and its initial password.", body = CreatedUser),
        (status = 400, description = "A missing or too long e-mail address, or a body that is no JSON object or array.", body = GlobalError),
        (status = 403, description = "`Illegal access: Not allowed.`: admins only.", body = GlobalError),
        (status = 409, description = "`Sorry, this email is already in use.`", body = GlobalError),
        BodyFaults,
        SessionFaults,
    ),
    security(("portal_jwt" = []))
)]
pub async fn create_user(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let session = session(&state, &request).await?;
    let body = read_json(&request, payload).await?;
    let email = email_field(&body);
    let created = state
        .engine
        .portal()
        .create_user(&session, email)
        .await
        .map_err(|error| portal_error(state.error_status, error))?;
    Ok(crate::json_ok(CreatedUser { email: created.email, initialpassword: created.initial_password }))
}
