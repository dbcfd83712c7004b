//! Cash API (`/dnapi/cash/v1`, scope `cash-api`): ATMs and cash registers claim and confirm.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use cashgrid_actors::domain::token::{ConfirmState, TokenRejection};
use cashgrid_actors::domain::DeviceType;
use cashgrid_actors::engine::Confirmation;
use cashgrid_actors::store::Scope;
use cashgrid_actors::{EngineError, Rejection};
use uuid::Uuid;

use super::{authenticate, resource, CASH_API};
use super::token_api::{device_error, new_device, query_map, REFNAME_LENGTH_MAX};
use super::views::{DeviceRow, TokenJson, TokenView};
use crate::body::{read_json, Fields};
use crate::error::ApiError;
use crate::{AppState, ErrorStatus};

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(resource::<CASH_API>("/devices", "POST").route(web::post().to(register_device)))
        .service(
            resource::<CASH_API>("/tokens/{code}", "GET,HEAD,PUT")
                .route(web::get().to(claim))
                .route(web::put().to(confirm)),
        );
}

async fn register_device(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let customer = authenticate(&state, &request, Scope::CashApi).await?;
    let body = read_json(&request, payload).await?;
    let new = new_device(state.error_status, &body, DeviceType::Atm)?;
    let device = state.engine.register_device(customer.id, new).await.map_err(|e| device_error(state.error_status, e))?;
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
        Rejection::Token(
            TokenRejection::NotOpen
            | TokenRejection::NotFound
            | TokenRejection::NotLocked
            | TokenRejection::LockedByAnotherDevice
            | TokenRejection::InvalidConfirmState
            | TokenRejection::IllegalAmountIncrease
            | TokenRejection::NegativeAmount
            | TokenRejection::NothingToUpdate,
        ) => "Token not in OPEN state.".to_owned(),
        Rejection::BadPublicKey(reason) => reason.to_string(),
        Rejection::TokenNotCreated => "Token not in OPEN state.".to_owned(),
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
    match state.engine.claim(customer.id, device, &radiocode).await {
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
        Rejection::Token(TokenRejection::NegativeAmount) => {
            (StatusCode::BAD_REQUEST, "Illegal amount: must not be negative.".to_owned())
        }
        Rejection::Token(TokenRejection::NotLocked | TokenRejection::NotOpen | TokenRejection::InvalidCode) => {
            (StatusCode::CONFLICT, "Token not in LOCKED state.".to_owned())
        }
        Rejection::Token(TokenRejection::NothingToUpdate)
        | Rejection::IllegalRadiocode
        | Rejection::BadPublicKey(_)
        | Rejection::TokenNotCreated => (StatusCode::BAD_REQUEST, format!("{rejection:?}")),
    };
    ApiError::business(mode, status, message)
}

/// Finish a locked token: `PUT /tokens/:uuid?device_uuid=C`.
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
    let invalid = |field: &str| ApiError::business(mode, StatusCode::BAD_REQUEST, format!("Invalid value for '{field}'"));
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
        return Err(match state.engine.owned_device(customer.id, device).await {
            Ok(_) => confirm_error(mode, &Rejection::UnknownToken, &device_text),
            Err(EngineError::Rejected(rejection)) => confirm_error(mode, &rejection, &device_text),
            Err(fault) => ApiError::from_fault(fault),
        });
    };
    match state.engine.confirm(customer.id, device, token, confirmation).await {
        Ok(token) => Ok(crate::json_ok(TokenJson::of(&token, TokenView::Row))),
        Err(EngineError::Rejected(rejection)) => Err(confirm_error(mode, &rejection, &device_text)),
        Err(fault) => Err(ApiError::from_fault(fault)),
    }
}
