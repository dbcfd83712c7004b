//! Cash API (`/dnapi/cash/v1`, scope `cash-api`): ATMs and cash registers claim and confirm.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use cashgrid_actors::domain::token::{ConfirmState, TokenRejection};
use cashgrid_actors::domain::DeviceType;
use cashgrid_actors::engine::trigger::{TriggerError, TriggerWait, TRIGGER_EXPIRES_IN_DEFAULT};
use cashgrid_actors::engine::Confirmation;
use cashgrid_actors::store::Scope;
use cashgrid_actors::trigger_actor::EXPIRES_IN_MAX;
use cashgrid_actors::{EngineError, Rejection};
use serde::Serialize;
use serde_json::Value;
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use super::handover_body::HandoverBody;
use super::token_api::{device_error, new_device, query_map, DeviceRegistration, REFNAME_LENGTH_MAX};
use super::views::{DeviceRow, TokenJson, TokenView};
use super::{authenticate, idempotency_key, resource, CASH_API};
use crate::body::{read_json, Fields};
use crate::error::{ApiError, GlobalError, TextError};
use crate::openapi::schemas::{ApiKeyFaults, BodyFaults, IdempotencyFaults, IdempotencyKeyHeader, TokenStateName};
use crate::{AppState, ErrorStatus};

/// The Cash API's operations, as annotated on the handlers below.
#[derive(OpenApi)]
#[openapi(paths(register_device, claim, confirm, create_trigger, wait_trigger, trigger_socket))]
pub(super) struct Document;

/// How an ATM finishes a locked token.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the body in the documents; `confirm` reads it field by field.
pub struct ConfirmationBody {
    /// `COMPLETED`, `CANCELED`, `FAILED`, `REJECTED` or `RETRACTED`; anything else is refused.
    #[schema(value_type = Option<TokenStateName>, required = false)]
    state: Option<String>,
    /// The amount paid out or taken in, when it differs from the token's (minor units).
    #[schema(required = false)]
    amount: Option<i64>,
    #[schema(required = false, max_length = 36)]
    lockrefname: Option<String>,
    /// Any JSON.
    #[schema(required = false)]
    processing_info: Option<Value>,
}

/// A new trigger code.
#[derive(Serialize, ToSchema)]
pub struct TriggerCode {
    /// A fresh uuid, or the ATM's uuid with fixed trigger codes.
    triggercode: String,
}

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(resource::<CASH_API>("/devices", "POST").route(web::post().to(register_device)))
        .service(
            resource::<CASH_API>("/tokens/{code}", "GET,HEAD,PUT")
                .route(web::get().to(claim))
                .route(web::put().to(confirm)),
        )
        .service(resource::<CASH_API>("/trigger", "POST").route(web::post().to(create_trigger)))
        // Before `/trigger/{code}`: trigger codes are uuids, never `ws`.
        .service(resource::<CASH_API>("/trigger/ws", "GET,HEAD").route(web::get().to(trigger_socket)))
        .service(resource::<CASH_API>("/trigger/{code}", "GET,HEAD").route(web::get().to(wait_trigger)));
}

/// Register an ATM or cash register.
#[utoipa::path(
    post,
    path = "/dnapi/cash/v1/devices",
    tag = "Cash API",
    params(IdempotencyKeyHeader),
    request_body(content = DeviceRegistration, content_type = "application/json"),
    responses(
        (status = 200, description = "The new device (`ATM` unless `type` says otherwise).", body = DeviceRow),
        (status = 400, description = "A field of the wrong type, an unknown `type`, a `refname` over 36 characters, \
            an unusable public key, or a body that is no JSON object or array.", body = GlobalError),
        BodyFaults,
        IdempotencyFaults,
        ApiKeyFaults,
    ),
    security(("dn_api_key" = [], "dn_api_secret" = []))
)]
async fn register_device(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let customer = authenticate(&state, &request, Scope::CashApi).await?;
    let key = idempotency_key(&request)?;
    let body = read_json(&request, payload).await?;
    let new = new_device(state.error_status, &body, DeviceType::Atm)?;
    let device = state
        .engine
        .devices()
        .register(customer.id, new, key.as_deref())
        .await
        .map_err(|e| device_error(state.error_status, e))?;
    Ok(crate::json_ok(DeviceRow::of(&device)))
}

/// The `device_uuid` query parameter as given (the original prints `undefined` when absent).
fn cash_device_text(request: &HttpRequest) -> String {
    query_map(request).remove("device_uuid").unwrap_or_else(|| "undefined".to_owned())
}

fn claim_message(rejection: &Rejection, device: &str, radiocode: &str) -> String {
    match rejection {
        Rejection::UnknownDevice => format!("Cash device with UUID {device} not found."),
        Rejection::IllegalRadiocode => "Illegal radio code".to_owned(),
        Rejection::UnknownToken => format!("Token not found: {}", lookup_key(radiocode)),
        Rejection::Token(TokenRejection::InvalidCode) => "Invalid token code".to_owned(),
        Rejection::Token(TokenRejection::InvalidSignature) => "Invalid signature".to_owned(),
        Rejection::Token(
            TokenRejection::NotOpen
            | TokenRejection::NotFound
            | TokenRejection::NotLocked
            | TokenRejection::LockedByAnotherDevice
            | TokenRejection::InvalidConfirmState
            | TokenRejection::IllegalAmountIncrease
            | TokenRejection::AmountOutOfRange
            | TokenRejection::ExpiresOutOfRange
            | TokenRejection::NothingToUpdate,
        ) => "Token not in OPEN state.".to_owned(),
        Rejection::BadPublicKey(reason) => reason.to_string(),
        Rejection::TokenNotCreated
        | Rejection::IdempotencyKeyReused
        | Rejection::IdempotencyKeyInFlight
        | Rejection::BatchTooLarge => "Token not in OPEN state.".to_owned(),
    }
}

/// What the original looked the token up by: the uuid part, or the plain code.
fn lookup_key(radiocode: &str) -> &str {
    let length = if radiocode.len() > 36 { 36 } else { 6 };
    let mut end = length.min(radiocode.len());
    while !radiocode.is_char_boundary(end) {
        end -= 1;
    }
    &radiocode[..end]
}

/// Verify and lock: `GET /tokens/:radiocode?device_uuid=C`. Every refusal is a 403.
/// Verify and lock a token with the radiocode from the phone's QR code: the token's uuid and
/// the hex of its secure code, or the 12-digit short code.
#[utoipa::path(
    get,
    path = "/dnapi/cash/v1/tokens/{code}",
    tag = "Cash API",
    params(
        ("code" = String, Path, min_length = 1, description = "The radiocode: uuid + hex(secure code), or the 12-digit plain code."),
        ("device_uuid" = String, Query, format = Uuid, description = "The caller's cash device that claims."),
    ),
    responses(
        (status = 200, description = "The token, now LOCKED, without its codes.", body = TokenJson),
        (status = 403, description = "Every refusal: `Cash device with UUID <d> not found.`, `Illegal radio code`, \
            `Token not found: <key>`, `Invalid token code` (the token is rejected for good), `Token not in OPEN state.`", body = TextError),
        ApiKeyFaults,
    ),
    security(("dn_api_key" = [], "dn_api_secret" = []))
)]
async fn claim(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let customer = authenticate(&state, &request, Scope::CashApi).await?;
    let device_text = cash_device_text(&request);
    let radiocode = path.into_inner();
    let Ok(device) = Uuid::parse_str(&device_text) else {
        return Err(ApiError::Claim(claim_message(&Rejection::UnknownDevice, &device_text, &radiocode)));
    };
    match state.engine.tokens().claim(customer.id, device, &radiocode).await {
        Ok(token) => Ok(crate::json_ok(TokenJson::of(&token, TokenView::Locked))),
        Err(EngineError::Rejected(rejection)) => {
            Err(ApiError::Claim(claim_message(&rejection, &device_text, &radiocode)))
        }
        Err(fault) => Err(ApiError::from_fault(fault)),
    }
}

fn confirm_error(mode: ErrorStatus, rejection: &Rejection, device: &str) -> ApiError {
    let (status, message) = match rejection {
        Rejection::UnknownDevice => (StatusCode::NOT_FOUND, format!("Cash device with UUID {device} not found.")),
        Rejection::UnknownToken | Rejection::Token(TokenRejection::NotFound) => {
            (StatusCode::NOT_FOUND, "Token not found".to_owned())
        }
        Rejection::Token(TokenRejection::LockedByAnotherDevice) => {
            (StatusCode::CONFLICT, "Sorry, token was locked by another device".to_owned())
        }
        Rejection::Token(TokenRejection::InvalidConfirmState) => (
            StatusCode::BAD_REQUEST,
            "Update token state: only values COMPLETED, CANCELED, FAILED, REJECTED, RETRACTED allowed.".to_owned(),
        ),
        Rejection::Token(TokenRejection::IllegalAmountIncrease) => {
            (StatusCode::BAD_REQUEST, "Illegal amount increase for dispense token.".to_owned())
        }
        Rejection::Token(TokenRejection::AmountOutOfRange) => {
            (StatusCode::BAD_REQUEST, "Illegal amount: must be between 0 and 9007199254740991.".to_owned())
        }
        Rejection::Token(
            TokenRejection::NotLocked
            | TokenRejection::NotOpen
            | TokenRejection::InvalidCode
            | TokenRejection::InvalidSignature,
        ) => (StatusCode::CONFLICT, "Token not in LOCKED state.".to_owned()),
        Rejection::Token(TokenRejection::NothingToUpdate | TokenRejection::ExpiresOutOfRange)
        | Rejection::IllegalRadiocode
        | Rejection::BadPublicKey(_)
        | Rejection::TokenNotCreated
        | Rejection::IdempotencyKeyReused
        | Rejection::IdempotencyKeyInFlight
        | Rejection::BatchTooLarge => (StatusCode::BAD_REQUEST, format!("{rejection:?}")),
    };
    ApiError::business(mode, status, message)
}

/// Finish a locked token: `PUT /tokens/:uuid?device_uuid=C`.
/// Finish a token this cash device locked.
#[utoipa::path(
    put,
    path = "/dnapi/cash/v1/tokens/{code}",
    tag = "Cash API",
    params(
        ("code" = String, Path, min_length = 1, format = Uuid, description = "The token's uuid."),
        ("device_uuid" = String, Query, format = Uuid, description = "The cash device that locked the token."),
    ),
    request_body(content = ConfirmationBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The token in its final state.", body = TokenJson),
        (status = 400, description = "A state that is not final, an amount over the issued one (cash-out) or below zero, \
            a field of the wrong type, a `lockrefname` over 36 characters, or a body that is no JSON object or array.", body = GlobalError),
        (status = 404, description = "`Cash device with UUID <d> not found.` or `Token not found`.", body = GlobalError),
        (status = 409, description = "`Token not in LOCKED state.` or `Sorry, token was locked by another device`.", body = GlobalError),
        BodyFaults,
        ApiKeyFaults,
    ),
    security(("dn_api_key" = [], "dn_api_secret" = []))
)]
async fn confirm(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let customer = authenticate(&state, &request, Scope::CashApi).await?;
    let body = read_json(&request, payload).await?;
    let mode = state.error_status;
    let device_text = cash_device_text(&request);
    let fields = Fields(&body);
    let invalid =
        |field: &str| ApiError::business(mode, StatusCode::BAD_REQUEST, format!("Invalid value for '{field}'"));
    let requested_state = fields.string("state").map_err(|_| invalid("state"))?;
    let lockrefname = fields.string("lockrefname").map_err(|_| invalid("lockrefname"))?;
    if lockrefname.as_ref().is_some_and(|text| text.chars().count() > REFNAME_LENGTH_MAX) {
        return Err(ApiError::business(mode, StatusCode::BAD_REQUEST, "Data too long for column 'lockrefname'"));
    }
    let confirmation = Confirmation {
        state: requested_state.as_deref().and_then(ConfirmState::parse),
        amount: fields.integer("amount").map_err(|_| invalid("amount"))?,
        lockrefname,
        processing_info: fields.get("processing_info").cloned(),
    };
    let Ok(device) = Uuid::parse_str(&device_text) else {
        return Err(confirm_error(mode, &Rejection::UnknownDevice, &device_text));
    };
    let Ok(token) = Uuid::parse_str(&path) else {
        // Keep the original's order: the device is checked before the token.
        return Err(match state.engine.devices().owned(customer.id, device).await {
            Ok(_) => confirm_error(mode, &Rejection::UnknownToken, &device_text),
            Err(EngineError::Rejected(rejection)) => confirm_error(mode, &rejection, &device_text),
            Err(fault) => ApiError::from_fault(fault),
        });
    };
    match state.engine.tokens().confirm(customer.id, device, token, confirmation).await {
        Ok(token) => Ok(crate::json_ok(TokenJson::of(&token, TokenView::Row))),
        Err(EngineError::Rejected(rejection)) => Err(confirm_error(mode, &rejection, &device_text)),
        Err(fault) => Err(ApiError::from_fault(fault)),
    }
}

/// `expiresIn` in seconds: absent or empty is the original's 60; otherwise a whole number
/// from 1 to `EXPIRES_IN_MAX` (the original took anything, and a non-number never expired).
fn expires_in(text: Option<&str>) -> Result<Duration, ()> {
    match text.map(str::trim) {
        None | Some("") => Ok(TRIGGER_EXPIRES_IN_DEFAULT),
        Some(text) => {
            let seconds: u64 = text.parse().map_err(|_| ())?;
            let duration = Duration::from_secs(seconds);
            if seconds == 0 || duration > EXPIRES_IN_MAX {
                return Err(());
            }
            Ok(duration)
        }
    }
}

/// `POST /trigger?device_uuid=C&expiresIn=S`: a trigger code for one of my cash devices.
/// A trigger code for one of the caller's cash devices, to show instead of scanning the phone.
#[utoipa::path(
    post,
    path = "/dnapi/cash/v1/trigger",
    tag = "Cash API",
    params(
        ("device_uuid" = String, Query, format = Uuid, description = "The caller's cash device."),
        ("expiresIn" = Option<u32>, Query, minimum = 1, maximum = 86400, description = "Validity in seconds (default 60)."),
    ),
    responses(
        (status = 200, description = "The trigger code.", body = TriggerCode),
        (status = 400, description = "`expiresIn` is not a whole number from 1 to 86400, or the body is no JSON object or array.", body = GlobalError),
        (status = 404, description = "`Sorry, device with UUID <d> not found.`", body = GlobalError),
        BodyFaults,
        ApiKeyFaults,
    ),
    security(("dn_api_key" = [], "dn_api_secret" = []))
)]
async fn create_trigger(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let customer = authenticate(&state, &request, Scope::CashApi).await?;
    read_json(&request, payload).await?;
    let mode = state.error_status;
    let query = query_map(&request);
    let device_text = query.get("device_uuid").cloned().unwrap_or_else(|| "undefined".to_owned());
    let unknown_device =
        || ApiError::business(mode, StatusCode::NOT_FOUND, format!("Sorry, device with UUID {device_text} not found."));
    let Ok(device) = Uuid::parse_str(&device_text) else {
        return Err(unknown_device());
    };
    let Ok(expires_in) = expires_in(query.get("expiresIn").map(String::as_str)) else {
        // The device is checked first, as everywhere in the original.
        return Err(match state.engine.devices().owned(customer.id, device).await {
            Ok(_) => ApiError::business(
                mode,
                StatusCode::BAD_REQUEST,
                format!("Invalid value for 'expiresIn': give whole seconds from 1 to {}", EXPIRES_IN_MAX.as_secs()),
            ),
            Err(EngineError::Rejected(_)) => unknown_device(),
            Err(fault) => ApiError::from_fault(fault),
        });
    };
    match state.engine.triggers().create(customer.id, device, expires_in).await {
        Ok(code) => Ok(crate::json_ok(TriggerCode { triggercode: code })),
        Err(EngineError::Rejected(_)) => Err(unknown_device()),
        Err(fault) => Err(ApiError::from_fault(fault)),
    }
}

fn trigger_not_found(mode: ErrorStatus, code: &str) -> ApiError {
    ApiError::business(mode, StatusCode::NOT_FOUND, format!("Trigger {code} not found."))
}

/// `GET /trigger/:code`: the long poll. 200 V-locked once a phone uses the trigger; the
/// original's "not found" when it is unknown or expires; 204 when nothing happened within the
/// server's bound (the trigger stays valid: poll again); and, when a newer poll of the same
/// code takes over, an error instead of the original's never-ending request.
/// Wait (a long poll, at most `trigger_wait_ms`, 120 s by default) until a phone uses the trigger.
#[utoipa::path(
    get,
    path = "/dnapi/cash/v1/trigger/{code}",
    tag = "Cash API",
    params(("code" = String, Path, min_length = 1, description = "A trigger code from `POST /trigger`.")),
    responses(
        (status = 200, description = "A phone used the trigger: the token, now LOCKED, without its codes.", body = TokenJson),
        (status = 204, description = "Nothing happened within the server's bound; the trigger is still valid: poll again."),
        (status = 404, description = "`Trigger <T> not found.`: unknown or expired.", body = GlobalError),
        (status = 409, description = "`Trigger <T> is awaited by a newer request.`", body = GlobalError),
        ApiKeyFaults,
    ),
    security(("dn_api_key" = [], "dn_api_secret" = []))
)]
async fn wait_trigger(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let customer = authenticate(&state, &request, Scope::CashApi).await?;
    let mode = state.error_status;
    let code = path.into_inner();
    let answer = state.engine.triggers().wait(customer.id, &code).await;
    match answer.map(|answer| (answer.outcome, answer.handover)) {
        Ok((TriggerWait::Locked(token), handover)) => {
            // The phone's 204 waits until this body has been handed to the connection.
            let json = serde_json::to_vec(&TokenJson::of(&token, TokenView::Locked)).map_err(|error| {
                tracing::error!(%error, "locked token could not be serialised");
                ApiError::Internal
            })?;
            Ok(HttpResponse::Ok().content_type(crate::JSON_CONTENT_TYPE).body(HandoverBody::new(json, handover)))
        }
        Ok((TriggerWait::TimedOut, _)) => Ok(HttpResponse::NoContent().finish()),
        Ok((TriggerWait::Expired, _)) | Err(TriggerError::UnknownTrigger) => Err(trigger_not_found(mode, &code)),
        Ok((TriggerWait::Replaced, _)) => Err(ApiError::business(
            mode,
            StatusCode::CONFLICT,
            format!("Trigger {code} is awaited by a newer request."),
        )),
        Err(TriggerError::Engine(EngineError::Rejected(rejection))) => {
            tracing::error!(?rejection, "unexpected rejection while waiting for a trigger");
            Err(ApiError::Internal)
        }
        Err(TriggerError::Engine(fault)) => Err(ApiError::from_fault(fault)),
        Err(TriggerError::MissingSignature) => Err(ApiError::Internal),
    }
}

/// `GET /trigger/ws?device_uuid=C` (WebSocket): the locks of C's triggers, pushed.
/// A WebSocket that pushes `{"triggercode":T,"token":<locked token>}` for every trigger of
/// this cash device that locks a token.
#[utoipa::path(
    get,
    path = "/dnapi/cash/v1/trigger/ws",
    tag = "Cash API",
    params(("device_uuid" = String, Query, format = Uuid, description = "The caller's cash device.")),
    responses(
        (status = 101, description = "The WebSocket is open."),
        (status = 400, description = "Not a WebSocket upgrade request.", body = GlobalError),
        (status = 404, description = "`Cash device with UUID <d> not found.`", body = GlobalError),
        ApiKeyFaults,
    ),
    security(("dn_api_key" = [], "dn_api_secret" = []))
)]
async fn trigger_socket(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let customer = authenticate(&state, &request, Scope::CashApi).await?;
    let mode = state.error_status;
    let device_text = cash_device_text(&request);
    let unknown_device =
        || ApiError::business(mode, StatusCode::NOT_FOUND, format!("Cash device with UUID {device_text} not found."));
    let Ok(device) = Uuid::parse_str(&device_text) else {
        return Err(unknown_device());
    };
    let feed = match state.engine.triggers().socket(customer.id, device).await {
        Ok(feed) => feed,
        Err(EngineError::Rejected(_)) => return Err(unknown_device()),
        Err(fault) => return Err(ApiError::from_fault(fault)),
    };
    let (response, session, incoming) =
        actix_ws::handle(&request, payload).map_err(|error| ApiError::bad_request(error.to_string()))?;
    actix_web::rt::spawn(super::trigger_socket::run(session, incoming, feed));
    Ok(response)
}
