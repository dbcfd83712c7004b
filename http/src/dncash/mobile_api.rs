//! Mobile API (`/dnapi/mobile/v1`, no credentials: the body carries a signature).
//!
//! `POST /trigger` `{"triggercode":T,"radiocode":R,"signature":B64}`: the phone claims the
//! token its radiocode names onto the cash device that created trigger T (spec §10). Success
//! is 204 without a body; every failure is the global error format, 500 as in the original
//! (400/403/404/409 under `error_status = "4xx"`). A missing signature is answered with a
//! clear message and leaves the token OPEN (the original failed with a TypeError there).

use actix_web::http::header::{ContentType, ALLOW};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use cashgrid_actors::domain::token::TokenRejection;
use cashgrid_actors::engine::trigger::TriggerError;
use cashgrid_actors::{EngineError, Rejection};
use serde_json::Value;
use utoipa::{OpenApi, ToSchema};

use super::headers;
use crate::body::read_json;
use crate::error::{ApiError, GlobalError};
use crate::openapi::schemas::{BodyFaults, Faults};
use crate::{AppState, ErrorStatus};

/// The Mobile API's operation, as annotated on the handler below.
#[derive(OpenApi)]
#[openapi(paths(trigger))]
pub(super) struct Document;

/// A phone's use of a trigger code.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the body in the documents; `trigger` reads it field by field.
pub struct TriggerUse {
    /// The code the ATM shows.
    triggercode: String,
    /// The token's radiocode: uuid + hex(secure code), or the 12-digit plain code.
    radiocode: String,
    /// Base64 of the RSA PKCS#1 v1.5 SHA-256 signature of `triggercode + radiocode`, made with
    /// the phone's private key.
    signature: String,
}

/// The methods `/trigger` answers, for OPTIONS.
const TRIGGER_METHODS: &str = "POST";
pub const MISSING_SIGNATURE: &str =
    "Missing signature: 'signature' must be the Base64 RSA-SHA256 signature of triggercode + radiocode";

pub fn configure(config: &mut web::ServiceConfig) {
    config.service(
        web::scope("/dnapi/mobile/v1")
            .wrap(actix_web::middleware::from_fn(super::text::refuse_nul))
            .wrap(actix_web::middleware::from_fn(headers::express_headers))
            .service(
                web::resource("/trigger")
                    .route(web::post().to(trigger))
                    .route(web::route().method(Method::OPTIONS).to(|| async {
                        HttpResponse::Ok()
                            .insert_header((ALLOW, TRIGGER_METHODS))
                            .content_type(ContentType::html())
                            .body(TRIGGER_METHODS)
                    }))
                    .default_service(web::to(not_found)),
            )
            .default_service(web::to(not_found)),
    );
}

/// No credentials in this group: an unknown path is the plain "Not Found".
async fn not_found(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(super::route_not_found(&state, &request))
}

/// A body field as JavaScript would turn it into a string: `None` when missing or null.
fn text_of(body: &Value, name: &str) -> Option<String> {
    match body.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.clone()),
        Some(other) => Some(other.to_string()),
    }
}

/// What the original looked the token up by: the uuid part, or the plain code.
fn lookup_key(radiocode: &str) -> String {
    let length = if radiocode.chars().count() > 36 { 36 } else { 6 };
    radiocode.chars().take(length).collect()
}

fn trigger_error(mode: ErrorStatus, error: TriggerError, code: &str, radiocode: &str) -> ApiError {
    let business = |status, message: String| ApiError::business(mode, status, message);
    match error {
        TriggerError::UnknownTrigger => business(StatusCode::NOT_FOUND, format!("Trigger {code} not found.")),
        TriggerError::MissingSignature => business(StatusCode::BAD_REQUEST, MISSING_SIGNATURE.to_owned()),
        TriggerError::Engine(EngineError::Rejected(rejection)) => match rejection {
            Rejection::IllegalRadiocode => business(StatusCode::BAD_REQUEST, "Illegal radio code".to_owned()),
            Rejection::UnknownToken | Rejection::Token(TokenRejection::NotFound) => {
                business(StatusCode::NOT_FOUND, format!("Token not found: {}", lookup_key(radiocode)))
            }
            Rejection::Token(TokenRejection::InvalidSignature) => {
                business(StatusCode::FORBIDDEN, "Invalid signature".to_owned())
            }
            Rejection::Token(TokenRejection::InvalidCode) => {
                business(StatusCode::FORBIDDEN, "Invalid token code".to_owned())
            }
            Rejection::BadPublicKey(reason) => business(StatusCode::BAD_REQUEST, reason.to_string()),
            Rejection::Token(
                TokenRejection::NotOpen
                | TokenRejection::NotLocked
                | TokenRejection::LockedByAnotherDevice
                | TokenRejection::InvalidConfirmState
                | TokenRejection::IllegalAmountIncrease
                | TokenRejection::AmountOutOfRange
                | TokenRejection::ExpiresOutOfRange
                | TokenRejection::NothingToUpdate,
            )
            | Rejection::UnknownDevice
            | Rejection::TokenNotCreated
            | Rejection::IdempotencyKeyReused
            | Rejection::IdempotencyKeyInFlight
            | Rejection::BatchTooLarge => business(StatusCode::CONFLICT, "Token not in OPEN state.".to_owned()),
        },
        TriggerError::Engine(fault) => ApiError::from_fault(fault),
    }
}

/// `POST /trigger`: the phone uses a trigger code.
#[utoipa::path(
    post,
    path = "/dnapi/mobile/v1/trigger",
    tag = "Mobile API",
    request_body(content = TriggerUse, content_type = "application/json"),
    responses(
        (status = 204, description = "The token is LOCKED for the trigger's cash device; its long poll and socket get it."),
        (status = 400, description = "A missing signature (the token stays OPEN), `Illegal radio code`, or a body \
            that is no JSON object or array.", body = GlobalError),
        (status = 403, description = "`Invalid signature` or `Invalid token code`: the token is rejected for good.", body = GlobalError),
        (status = 404, description = "`Trigger <T> not found.` or `Token not found: <key>`.", body = GlobalError),
        (status = 409, description = "`Token not in OPEN state.`", body = GlobalError),
        BodyFaults,
        Faults,
    )
)]
async fn trigger(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_json(&request, payload).await?;
    let code = text_of(&body, "triggercode").unwrap_or_else(|| "undefined".to_owned());
    let radiocode = text_of(&body, "radiocode").unwrap_or_default();
    let signature = match body.get("signature") {
        Some(Value::String(text)) => Some(text.as_str()),
        _ => None,
    };
    match state.engine.triggers().claim(&code, &radiocode, signature).await {
        Ok(_) => Ok(HttpResponse::NoContent().finish()),
        Err(error) => Err(trigger_error(state.error_status, error, &code, &radiocode)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn body_fields_read_as_javascript_strings() {
        let body = json!({"triggercode": 12, "radiocode": "abc", "signature": null});
        assert_eq!(text_of(&body, "triggercode").as_deref(), Some("12"));
        assert_eq!(text_of(&body, "radiocode").as_deref(), Some("abc"));
        assert_eq!(text_of(&body, "signature"), None);
        assert_eq!(text_of(&body, "missing"), None);
    }

    #[test]
    fn token_lookup_keys_are_the_uuid_or_the_plain_code() {
        let long = format!("{}a1b2c3", "0".repeat(36));
        assert_eq!(lookup_key(&long), "0".repeat(36));
        assert_eq!(lookup_key("123456987654"), "123456");
        assert_eq!(lookup_key("12"), "12");
    }

    #[test]
    fn every_refusal_is_a_500_in_the_original_mode() {
        let errors = [
            TriggerError::UnknownTrigger,
            TriggerError::MissingSignature,
            TriggerError::Engine(EngineError::Rejected(Rejection::Token(TokenRejection::InvalidSignature))),
            TriggerError::Engine(EngineError::Rejected(Rejection::UnknownToken)),
        ];
        for error in errors {
            let mapped = trigger_error(ErrorStatus::Original, error, "t", "r");
            assert!(
                matches!(mapped, ApiError::Business { status: StatusCode::INTERNAL_SERVER_ERROR, .. }),
                "{mapped:?}"
            );
        }
        let not_found = trigger_error(ErrorStatus::Original, TriggerError::UnknownTrigger, "t-1", "r");
        assert_eq!(not_found.to_string(), "Trigger t-1 not found.");
    }
}
