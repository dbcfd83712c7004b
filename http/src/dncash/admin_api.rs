//! Admin (portal) API (`/dnapi/admin/v1`): login and registration without a session, everything
//! else behind the original's JWT (`Authorization: Bearer <jwt>`), spec §3.2–3.7 and §4.
//!
//! Answers keep what a portal client notices: login failures are 200s with `{"result":…}`,
//! business failures the original's 500 texts (4xx under `--error-status 4xx`), writes answer
//! MySQL "OK packets". Deliberate fixes: an account is read and changed by its owner only, and
//! `PUT /accounts/:id` never moves an account to another customer.

mod access;
mod accounts;
mod auth;
mod customers;
mod devices;
mod params;
mod stats;

use actix_web::http::header::{self, ContentType};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpMessage as _, HttpRequest, HttpResponse};
use cashgrid_actors::engine::portal::{PortalError, PortalRejection, Session, SessionCheck};
use serde::Serialize;
use serde_json::Value;
use utoipa::{OpenApi as _, ToSchema};

use crate::error::ApiError;
use crate::{AppState, ErrorStatus};

/// The Admin API's operations, as annotated on the handlers of the submodules.
pub(super) fn document() -> utoipa::openapi::OpenApi {
    let mut document = auth::Document::openapi();
    for part in [
        customers::Document::openapi(),
        access::Document::openapi(),
        devices::Document::openapi(),
        accounts::Document::openapi(),
        stats::Document::openapi(),
        params::Document::openapi(),
    ] {
        document.merge(part);
    }
    document
}

/// express-jwt's answer to a bad `Authorization` header.
const BAD_FORMAT: &str = "Format is Authorization: Bearer [token]";
const NO_TOKEN: &str = "No authorization token was found";

pub fn configure(config: &mut web::ServiceConfig) {
    config.service(
        web::scope("/dnapi/admin/v1")
            .wrap(actix_web::middleware::from_fn(super::text::refuse_nul))
            .wrap(actix_web::middleware::from_fn(super::headers::express_headers))
            .service(open_resource("/auth", "POST").route(web::post().to(auth::login)))
            .service(open_resource("/auth/register", "POST").route(web::post().to(auth::register)))
            .service(
                resource("/auth/twofa", "GET,HEAD,POST,DELETE")
                    .route(web::get().to(auth::begin_twofa))
                    .route(web::post().to(auth::enable_twofa))
                    .route(web::delete().to(auth::disable_twofa)),
            )
            .service(resource("/auth/changepw", "PUT").route(web::put().to(auth::change_password)))
            .service(resource("/auth/create", "POST").route(web::post().to(auth::create_user)))
            .service(resource("/customers", "GET,HEAD").route(web::get().to(customers::list)))
            .service(
                resource("/customers/{email}", "PUT,DELETE")
                    .route(web::put().to(customers::update))
                    .route(web::delete().to(customers::delete)),
            )
            .service(resource("/customers/{email}/twofa", "DELETE").route(web::delete().to(customers::reset_twofa)))
            .service(
                resource("/access", "GET,HEAD,POST")
                    .route(web::post().to(access::create))
                    .route(web::get().to(access::list)),
            )
            .service(
                resource("/access/{id}", "PUT,DELETE")
                    .route(web::put().to(access::reveal))
                    .route(web::delete().to(access::delete)),
            )
            .service(resource("/devices", "GET,HEAD").route(web::get().to(devices::list)))
            .service(
                resource("/devices/{id}", "PUT,DELETE")
                    .route(web::put().to(devices::update))
                    .route(web::delete().to(devices::delete)),
            )
            .service(
                resource("/accounts", "GET,HEAD,POST")
                    .route(web::post().to(accounts::create))
                    .route(web::get().to(accounts::list)),
            )
            .service(
                resource("/accounts/{id}", "GET,HEAD,PUT,DELETE")
                    .route(web::get().to(accounts::get))
                    .route(web::put().to(accounts::update))
                    .route(web::delete().to(accounts::delete)),
            )
            .service(resource("/tokenstat", "GET,HEAD").route(web::get().to(stats::token_stats)))
            .service(resource("/journal", "GET,HEAD").route(web::get().to(stats::journal)))
            .service(
                resource("/params/{pkey}", "GET,HEAD,PUT,DELETE")
                    .route(web::get().to(params::get))
                    .route(web::put().to(params::set))
                    .route(web::delete().to(params::delete)),
            )
            .service(resource("/admin/devicestat", "GET,HEAD").route(web::get().to(stats::device_stats)))
            .service(resource("/admin/journal", "GET,HEAD").route(web::get().to(stats::admin_journal)))
            .default_service(web::to(not_found)),
    );
}

/// The original's preflight answer: `Allow` and the same list as an HTML body.
fn allow(methods: &'static str) -> HttpResponse {
    HttpResponse::Ok().insert_header((header::ALLOW, methods)).content_type(ContentType::html()).body(methods)
}

/// A route of the unauthenticated part (`/auth`, `/auth/register`): its preflight needs no
/// session; any other method falls through to the session-guarded "Not Found".
fn open_resource(path: &str, methods: &'static str) -> actix_web::Resource {
    web::resource(path)
        .route(web::route().method(Method::OPTIONS).to(move || async move { allow(methods) }))
        .default_service(web::to(not_found))
}

/// A session-guarded route: OPTIONS passes without a session only when the preflight asks
/// for the `authorization` header (express-jwt's rule), and is then answered with `Allow`.
fn resource(path: &str, methods: &'static str) -> actix_web::Resource {
    web::resource(path)
        .route(web::route().method(Method::OPTIONS).to(
            move |state: web::Data<AppState>, request: HttpRequest| async move {
                if !is_authorization_preflight(&request) {
                    session(&state, &request).await?;
                }
                Ok::<_, ApiError>(allow(methods))
            },
        ))
        .default_service(web::to(not_found))
}

/// An OPTIONS request whose `Access-Control-Request-Headers` lists `authorization`.
fn is_authorization_preflight(request: &HttpRequest) -> bool {
    request.method() == Method::OPTIONS
        && request
            .headers()
            .get("access-control-request-headers")
            .and_then(|value| value.to_str().ok())
            .is_some_and(|list| list.split(',').any(|name| name.trim() == "authorization"))
}

/// Unknown path or method: the session first (as the original's router order has it), then
/// `500 Not Found: <url>` (404 under `4xx`).
async fn not_found(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    if !is_authorization_preflight(&request) {
        session(&state, &request).await?;
    }
    Err(super::route_not_found(&state, &request))
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::Business { status: StatusCode::UNAUTHORIZED, message: message.to_owned() }
}

/// The caller's session from `Authorization: Bearer <jwt>`; 401 with express-jwt's messages.
pub(crate) async fn session(state: &AppState, request: &HttpRequest) -> Result<Session, ApiError> {
    let header =
        request.headers().get(header::AUTHORIZATION).map(|value| value.to_str().map_err(|_| unauthorized(BAD_FORMAT)));
    let text = match header {
        None => return Err(unauthorized(NO_TOKEN)),
        Some(text) => text?,
    };
    if text.is_empty() {
        return Err(unauthorized(NO_TOKEN));
    }
    let parts: Vec<&str> = text.split(' ').collect();
    let [scheme, token] = parts.as_slice() else {
        return Err(unauthorized(BAD_FORMAT));
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(unauthorized(BAD_FORMAT));
    }
    if token.is_empty() {
        return Err(unauthorized(NO_TOKEN));
    }
    state.engine.portal().verify_session(token).await.map_err(|check| match check {
        SessionCheck::Refused(error) => unauthorized(error.message()),
        SessionCheck::Fault(fault) => ApiError::from_fault(fault),
    })
}

/// A portal refusal in the original's words; faults stay opaque.
fn portal_error(mode: ErrorStatus, error: PortalError) -> ApiError {
    let rejection = match error {
        PortalError::Rejected(rejection) => rejection,
        PortalError::Fault(fault) => return ApiError::from_fault(fault),
    };
    let (status, message) = match rejection {
        PortalRejection::NotAllowed => (StatusCode::FORBIDDEN, "Illegal access: Not allowed.".to_owned()),
        PortalRejection::EmailInUse => (StatusCode::CONFLICT, "Sorry, this email is already in use.".to_owned()),
        PortalRejection::MissingField(field) => (StatusCode::BAD_REQUEST, column_null(field)),
        PortalRejection::TooLong(field) => (StatusCode::BAD_REQUEST, column_too_long(field)),
        PortalRejection::UnknownColumn(field) => (StatusCode::BAD_REQUEST, unknown_column(&field)),
        PortalRejection::WrongPassword => (StatusCode::FORBIDDEN, "Sorry, wrong password".to_owned()),
        PortalRejection::PasswordIncorrect => (StatusCode::FORBIDDEN, "Sorry, the password is incorrect.".to_owned()),
        PortalRejection::BadNewPassword => (StatusCode::BAD_REQUEST, "Sorry, bad new password".to_owned()),
        PortalRejection::SamePassword => {
            (StatusCode::BAD_REQUEST, "Sorry, the new password cannot be the same as the old password.".to_owned())
        }
        PortalRejection::InvalidTwofaToken => (StatusCode::BAD_REQUEST, "Invalid 2FA token".to_owned()),
        PortalRejection::UnknownScope(scope) => (StatusCode::BAD_REQUEST, format!("Unknown scope: {scope}")),
        PortalRejection::UnknownCustomer => (StatusCode::NOT_FOUND, "Sorry, no customer with this email.".to_owned()),
        PortalRejection::StillReferenced => (
            StatusCode::CONFLICT,
            "ER_ROW_IS_REFERENCED_2: Cannot delete or update a parent row: a foreign key constraint fails".to_owned(),
        ),
        PortalRejection::NothingToUpdate => {
            (StatusCode::BAD_REQUEST, "Nothing to update: give 'type' or 'refname'.".to_owned())
        }
    };
    ApiError::business(mode, status, message)
}

/// MySQL's words for the input mistakes the original let its database find.
fn column_null(field: &str) -> String {
    format!("ER_BAD_NULL_ERROR: Column '{field}' cannot be null")
}

fn column_too_long(field: &str) -> String {
    format!("ER_DATA_TOO_LONG: Data too long for column '{field}' at row 1")
}

fn column_truncated(field: &str) -> String {
    format!("WARN_DATA_TRUNCATED: Data truncated for column '{field}' at row 1")
}

fn unknown_column(field: &str) -> String {
    format!("ER_BAD_FIELD_ERROR: Unknown column '{field}' in 'field list'")
}

/// A client mistake in a body field: the original's 500 (400 under `4xx`).
fn invalid(mode: ErrorStatus, message: String) -> ApiError {
    ApiError::business(mode, StatusCode::BAD_REQUEST, message)
}

/// The MySQL driver's OK packet the original answers writes with; `affectedRows` counts
/// matched rows.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct OkPacket {
    field_count: u32,
    affected_rows: u64,
    insert_id: u64,
    server_status: u32,
    warning_count: u32,
    message: &'static str,
    protocol41: bool,
    changed_rows: u64,
}

fn ok_packet(affected_rows: u64) -> HttpResponse {
    crate::json_ok(OkPacket {
        field_count: 0,
        affected_rows,
        insert_id: 0,
        server_status: 2,
        warning_count: 0,
        message: "",
        protocol41: true,
        changed_rows: 0,
    })
}

/// A handler that resolved with nothing: 200, empty body, JSON content type.
fn empty_ok() -> HttpResponse {
    HttpResponse::Ok().content_type(crate::JSON_CONTENT_TYPE).finish()
}

/// `{"token": <jwt>}`: a new session.
#[derive(Serialize, ToSchema)]
#[schema(as = Session)]
struct TokenAnswer {
    /// The portal JWT (HS256), for `Authorization: Bearer`.
    token: String,
}

fn token_answer(token: String) -> HttpResponse {
    crate::json_ok(TokenAnswer { token })
}

/// A body field as text: strings as they are, numbers in decimal (the original's loose reads).
fn text_field(body: &Value, name: &str) -> Option<String> {
    match body.get(name) {
        Some(Value::String(text)) => Some(text.clone()),
        Some(Value::Number(number)) => Some(number.to_string()),
        _ => None,
    }
}

/// A numeric row id from the path; anything else matches no row (MySQL read it as 0).
fn row_id(text: &str) -> Option<i64> {
    text.trim().parse().ok().filter(|id: &i64| *id > 0)
}

/// The last path segment as the client sent it (before case folding), percent-decoded.
fn original_last_segment(request: &HttpRequest, routed: &str) -> String {
    let Some(original) = request.extensions().get::<super::paths::OriginalUri>().map(|original| original.0.clone())
    else {
        return routed.to_owned();
    };
    let segment = original.path().trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_owned();
    percent_decode(&segment)
}

/// `%XX` escapes decoded; a stray `%` stays as it is, and invalid UTF-8 becomes U+FFFD.
fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn percent_escapes_are_decoded_and_stray_percents_kept() {
        assert_eq!(percent_decode("USE_PLAIN_CODES"), "USE_PLAIN_CODES");
        assert_eq!(percent_decode("a%40b.de"), "a@b.de");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
