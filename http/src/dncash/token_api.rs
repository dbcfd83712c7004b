//! Token API (`/dnapi/token/v1`, scope `token-api`): banks register phones and issue tokens.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use cashgrid_actors::domain::token::{amount_in_range, expires_in_range, TokenRejection, TokenState, TokenType};
use cashgrid_actors::domain::DeviceType;
use cashgrid_actors::engine::{NewDevice, NewToken};
use cashgrid_actors::store::{Scope, TokenFilter};
use cashgrid_actors::{EngineError, Rejection};
use serde_json::Value;
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use super::views::{DeviceRow, TokenJson, TokenView};
use super::{authenticate, idempotency_key, resource, TOKEN_API};
use crate::body::{read_json, Fields};
use crate::error::{ApiError, GlobalError};
use crate::openapi::schemas::{
    ApiKeyFaults, BodyFaults, DeviceTypeName, ExpiresValue, IdempotencyFaults, IdempotencyKeyHeader, TokenStateName,
    TokenTypeName,
};
use crate::{AppState, ErrorStatus};

/// Longest `refname` the original's column holds.
pub const REFNAME_LENGTH_MAX: usize = 36;
/// Longest currency `symbol` the original's column holds.
const SYMBOL_LENGTH_MAX: usize = 5;
/// Body keys the original accepts on token creation (token columns, some set by the server).
const TOKEN_COLUMNS: [&str; 20] = [
    "device_uuid",
    "amount",
    "symbol",
    "type",
    "expires",
    "refname",
    "info",
    "clearstate",
    "id",
    "uuid",
    "created",
    "updated",
    "code_type",
    "plain_code",
    "secure_code",
    "state",
    "lockrefname",
    "processing_info",
    "owner_id",
    "lock_device_id",
];
const NOT_FOUND: &str = "Not found";
const TOKEN_NOT_CREATED: &str = "Token could not be created in database";

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(
            resource::<TOKEN_API>("/devices", "GET,HEAD,POST")
                .route(web::post().to(register_device))
                .route(web::get().to(list_devices)),
        )
        .service(resource::<TOKEN_API>("/devices/{uuid}", "GET,HEAD").route(web::get().to(get_device)))
        .service(
            resource::<TOKEN_API>("/tokens", "GET,HEAD,POST")
                .route(web::post().to(create_token))
                .route(web::get().to(list_tokens)),
        )
        .service(
            resource::<TOKEN_API>("/tokens/{uuid}", "GET,HEAD,PUT,DELETE")
                .route(web::get().to(get_token))
                .route(web::put().to(update_token))
                .route(web::delete().to(delete_token)),
        );
}

/// The Token API's operations, as annotated on the handlers below.
#[derive(OpenApi)]
#[openapi(paths(
    register_device,
    list_devices,
    get_device,
    create_token,
    list_tokens,
    get_token,
    update_token,
    delete_token
))]
pub(super) struct Document;

/// A device registration (Token API: a phone; Cash API: an ATM or cash register). Every field
/// may be missing; the body is read loosely, as the original's was.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the body in the documents; `new_device` reads it field by field.
pub struct DeviceRegistration {
    /// `MOBILE` by default on the Token API, `ATM` on the Cash API (any case).
    #[schema(rename = "type", value_type = Option<DeviceTypeName>, required = false)]
    device_type: Option<String>,
    /// The phone's RSA public key, PEM (PKCS#1 or SPKI): secure codes are encrypted to it.
    #[schema(required = false)]
    pubkey: Option<String>,
    #[schema(required = false)]
    lat: Option<f64>,
    #[schema(required = false)]
    lon: Option<f64>,
    #[schema(required = false, max_length = 36)]
    refname: Option<String>,
    /// Any JSON; echoed back as JSON text.
    #[schema(required = false)]
    info: Option<Value>,
}

pub fn query_map(request: &HttpRequest) -> HashMap<String, String> {
    web::Query::<HashMap<String, String>>::from_query(request.query_string())
        .map(web::Query::into_inner)
        .unwrap_or_default()
}

/// Parse a device registration body; shared with the Cash API, which defaults to ATM.
pub fn new_device(mode: ErrorStatus, body: &Value, default_type: DeviceType) -> Result<NewDevice, ApiError> {
    let fields = Fields(body);
    let invalid =
        |field: &str| ApiError::business(mode, StatusCode::BAD_REQUEST, format!("Invalid value for '{field}'"));
    let device_type = match fields.string("type").map_err(|_| invalid("type"))? {
        None => default_type,
        Some(text) => DeviceType::parse(&text).ok_or_else(|| {
            ApiError::business(mode, StatusCode::BAD_REQUEST, format!("Data truncated for column 'type': {text}"))
        })?,
    };
    let refname = fields.string("refname").map_err(|_| invalid("refname"))?;
    if refname.as_ref().is_some_and(|text| text.chars().count() > REFNAME_LENGTH_MAX) {
        return Err(ApiError::business(mode, StatusCode::BAD_REQUEST, "Data too long for column 'refname'"));
    }
    Ok(NewDevice {
        device_type,
        pubkey: fields.string("pubkey").map_err(|_| invalid("pubkey"))?,
        lat: fields.float("lat").map_err(|_| invalid("lat"))?,
        lon: fields.float("lon").map_err(|_| invalid("lon"))?,
        refname,
        info: fields.get("info").map(Value::to_string),
    })
}

/// The original never validated keys; cashgrid refuses unusable ones up front with a 400.
pub fn device_error(mode: ErrorStatus, error: EngineError) -> ApiError {
    match error {
        EngineError::Rejected(Rejection::BadPublicKey(reason)) => ApiError::bad_request(reason.to_string()),
        EngineError::Rejected(Rejection::IdempotencyKeyReused) => ApiError::idempotency_key(false),
        EngineError::Rejected(Rejection::IdempotencyKeyInFlight) => ApiError::idempotency_key(true),
        EngineError::Rejected(other) => ApiError::business(mode, StatusCode::BAD_REQUEST, format!("{other:?}")),
        fault => ApiError::from_fault(fault),
    }
}

/// Register a phone.
#[utoipa::path(
    post,
    path = "/dnapi/token/v1/devices",
    tag = "Token API",
    params(IdempotencyKeyHeader),
    request_body(content = DeviceRegistration, content_type = "application/json"),
    responses(
        (status = 200, description = "The new device.", body = DeviceRow),
        (status = 400, description = "A field of the wrong type (`Invalid value for 'lat'`), an unknown `type` \
            (`Data truncated for column 'type': X`), a `refname` over 36 characters, an unusable public key, \
            or a body that is no JSON object or array.", body = GlobalError),
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
    let customer = authenticate(&state, &request, Scope::TokenApi).await?;
    let key = idempotency_key(&request)?;
    let body = read_json(&request, payload).await?;
    let new = new_device(state.error_status, &body, DeviceType::Mobile)?;
    let device = state
        .engine
        .devices()
        .register(customer.id, new, key.as_deref())
        .await
        .map_err(|e| device_error(state.error_status, e))?;
    Ok(crate::json_ok(DeviceRow::of(&device)))
}

/// The caller's devices.
#[utoipa::path(
    get,
    path = "/dnapi/token/v1/devices",
    tag = "Token API",
    responses((status = 200, description = "Every device of the caller.", body = Vec<DeviceRow>), ApiKeyFaults),
    security(("dn_api_key" = [], "dn_api_secret" = []))
)]
async fn list_devices(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let customer = authenticate(&state, &request, Scope::TokenApi).await?;
    let devices = state.engine.devices().list(customer.id).await.map_err(ApiError::from_fault)?;
    Ok(crate::json_ok(devices.iter().map(DeviceRow::of).collect::<Vec<_>>()))
}

/// One of the caller's devices.
#[utoipa::path(
    get,
    path = "/dnapi/token/v1/devices/{uuid}",
    tag = "Token API",
    params(("uuid" = String, Path, min_length = 1, format = Uuid, description = "The device's uuid.")),
    responses(
        (status = 200, description = "The device.", body = DeviceRow),
        (status = 404, description = "No device of the caller's with this uuid: the JSON string `\"Not found\"`.", content_type = "application/json", body = String, example = json!("Not found")),
        ApiKeyFaults,
    ),
    security(("dn_api_key" = [], "dn_api_secret" = []))
)]
async fn get_device(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let customer = authenticate(&state, &request, Scope::TokenApi).await?;
    let Ok(uuid) = Uuid::parse_str(&path) else {
        return Err(ApiError::NotFound(NOT_FOUND));
    };
    match state.engine.devices().find(customer.id, uuid).await.map_err(ApiError::from_fault)? {
        Some(device) => Ok(crate::json_ok(DeviceRow::of(&device))),
        None => Err(ApiError::NotFound(NOT_FOUND)),
    }
}

/// `expires` as the original's `new Date(x)` reads it: epoch ms, or a date string.
fn parse_expires(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64().or_else(|| number.as_f64().map(|ms| ms as i64)),
        Value::String(text) => crate::time::parse_millis(text),
        _ => None,
    }
}

/// A token to issue. Only these keys and the token's other columns are accepted.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the body in the documents; `new_token` reads it field by field.
pub struct NewTokenBody {
    /// The phone (one of the caller's devices) the secure code is encrypted to.
    #[schema(format = Uuid)]
    device_uuid: String,
    /// Minor units (cents); a numeric string is read too.
    #[schema(minimum = 0)]
    amount: i64,
    #[schema(max_length = 5, example = "EUR")]
    symbol: String,
    /// `CASHOUT` by default (any case).
    #[schema(rename = "type", value_type = Option<TokenTypeName>, required = false)]
    token_type: Option<String>,
    /// Epoch milliseconds (a number or a numeric string), or an RFC 3339 date-time.
    #[schema(value_type = Option<ExpiresValue>, required = false)]
    expires: Option<Value>,
    #[schema(required = false, max_length = 36)]
    refname: Option<String>,
    /// Any JSON.
    #[schema(required = false)]
    info: Option<Value>,
    #[schema(required = false)]
    clearstate: Option<i64>,
}

/// What the owner may change.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the body in the documents; `update_token` reads it field by field.
pub struct TokenUpdate {
    #[schema(required = false)]
    clearstate: Option<i64>,
    /// Any JSON; replaces the token's `info`.
    #[schema(required = false)]
    info: Option<Value>,
}

/// Validate a creation body; `Err(())` is the original's catch-all "could not be created".
fn new_token(device: Uuid, body: &Value) -> Result<NewToken, ()> {
    let Value::Object(map) = body else {
        return Err(());
    };
    if map.keys().any(|key| !TOKEN_COLUMNS.contains(&key.as_str())) {
        return Err(());
    }
    let fields = Fields(body);
    let amount = fields.integer("amount").map_err(|_| ())?.filter(|amount| amount_in_range(*amount)).ok_or(())?;
    let symbol = fields.string("symbol").map_err(|_| ())?.ok_or(())?;
    let token_type = match fields.string("type").map_err(|_| ())? {
        None => TokenType::Cashout,
        Some(text) => TokenType::parse(&text).ok_or(())?,
    };
    let expires = match fields.get("expires") {
        None => None,
        Some(value) => Some(parse_expires(value).filter(|expires| expires_in_range(*expires)).ok_or(())?),
    };
    let refname = fields.string("refname").map_err(|_| ())?;
    if symbol.chars().count() > SYMBOL_LENGTH_MAX
        || refname.as_ref().is_some_and(|r| r.chars().count() > REFNAME_LENGTH_MAX)
    {
        return Err(());
    }
    Ok(NewToken {
        device,
        token_type,
        amount,
        symbol,
        expires,
        refname,
        clearstate: fields.integer("clearstate").map_err(|_| ())?.unwrap_or(0),
        info: fields.get("info").cloned(),
    })
}

/// Issue a token to one of the caller's phones; the secure code comes encrypted to the phone.
#[utoipa::path(
    post,
    path = "/dnapi/token/v1/tokens",
    tag = "Token API",
    params(IdempotencyKeyHeader),
    request_body(content = NewTokenBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The new token (OPEN), with its codes and without `device_uuid`.", body = TokenJson),
        (status = 400, description = "`Token could not be created in database` (a missing or negative amount, \
            a missing or too long symbol, an unknown type or key, an unreadable `expires` or one outside 1970..9999, ...), or a body that is \
            no JSON object or array.", body = GlobalError),
        (status = 404, description = "`Sorry, device with UUID <device_uuid> not found.`", body = GlobalError),
        BodyFaults,
        IdempotencyFaults,
        ApiKeyFaults,
    ),
    security(("dn_api_key" = [], "dn_api_secret" = []))
)]
async fn create_token(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let customer = authenticate(&state, &request, Scope::TokenApi).await?;
    let key = idempotency_key(&request)?;
    let body = read_json(&request, payload).await?;
    let mode = state.error_status;
    let device_text = match body.get("device_uuid") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => "undefined".to_owned(),
        Some(other) => other.to_string(),
    };
    let unknown_device =
        || ApiError::business(mode, StatusCode::NOT_FOUND, format!("Sorry, device with UUID {device_text} not found."));
    let Ok(device) = Uuid::parse_str(&device_text) else {
        return Err(unknown_device());
    };
    let new = match new_token(device, &body) {
        Ok(new) => new,
        Err(()) => {
            // The original checks the device before it tries the insert.
            let owned = state.engine.devices().find(customer.id, device).await.map_err(ApiError::from_fault)?;
            return Err(match owned {
                None => unknown_device(),
                Some(_) => ApiError::business(mode, StatusCode::BAD_REQUEST, TOKEN_NOT_CREATED),
            });
        }
    };
    match state.engine.tokens().create(customer.id, new, key.as_deref()).await {
        Ok(token) => Ok(crate::json_ok(TokenJson::of(&token, TokenView::Row))),
        Err(EngineError::Rejected(rejection)) => Err(match rejection {
            Rejection::UnknownDevice => unknown_device(),
            Rejection::IdempotencyKeyReused => ApiError::idempotency_key(false),
            Rejection::IdempotencyKeyInFlight => ApiError::idempotency_key(true),
            Rejection::BadPublicKey(reason) => ApiError::business(mode, StatusCode::BAD_REQUEST, reason.to_string()),
            Rejection::TokenNotCreated
            | Rejection::Token(_)
            | Rejection::UnknownToken
            | Rejection::IllegalRadiocode
            | Rejection::BatchTooLarge => ApiError::business(mode, StatusCode::BAD_REQUEST, TOKEN_NOT_CREATED),
        }),
        Err(fault) => Err(ApiError::from_fault(fault)),
    }
}

/// The original's list filters: `device_uuid` alone (OPEN tokens of that device), or any of
/// `state`, `clearstate`, `uuid` and their `t.`/`d.` spellings. `None`: nothing can match.
fn token_filter(query: &HashMap<String, String>) -> Option<TokenFilter> {
    let pick = |names: &[&str]| names.iter().find_map(|name| query.get(*name)).cloned();
    if let Some(device) = query.get("device_uuid") {
        return Some(TokenFilter {
            state: Some(TokenState::Open),
            device: Some(Uuid::parse_str(device).ok()?),
            ..TokenFilter::default()
        });
    }
    let mut filter = TokenFilter::default();
    if let Some(state) = pick(&["state", "t.state"]) {
        filter.state = Some(TokenState::parse(&state)?);
    }
    if let Some(clearstate) = pick(&["clearstate", "t.clearstate"]) {
        filter.clearstate = Some(clearstate.trim().parse().ok()?);
    }
    if let Some(uuid) = pick(&["uuid", "t.uuid"]) {
        filter.uuid = Some(Uuid::parse_str(&uuid).ok()?);
    }
    if let Some(device) = pick(&["d.uuid"]) {
        filter.device = Some(Uuid::parse_str(&device).ok()?);
    }
    Some(filter)
}

/// The caller's tokens: the OPEN tokens of one phone (`device_uuid`), or filtered by the other
/// parameters. A value that cannot match (an unknown state, a bad uuid) gives `[]`.
#[utoipa::path(
    get,
    path = "/dnapi/token/v1/tokens",
    tag = "Token API",
    params(
        ("device_uuid" = Option<String>, Query, format = Uuid, description = "Only this phone's OPEN tokens (the other filters are ignored)."),
        ("state" = Option<TokenStateName>, Query, description = "Also `t.state`."),
        ("clearstate" = Option<i64>, Query, description = "Also `t.clearstate`."),
        ("uuid" = Option<String>, Query, format = Uuid, description = "Also `t.uuid`."),
        ("d.uuid" = Option<String>, Query, format = Uuid, description = "The phone's uuid, with any state."),
    ),
    responses((status = 200, description = "The matching tokens, with their codes and `device_uuid`.", body = Vec<TokenJson>), ApiKeyFaults),
    security(("dn_api_key" = [], "dn_api_secret" = []))
)]
async fn list_tokens(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let customer = authenticate(&state, &request, Scope::TokenApi).await?;
    let tokens = match token_filter(&query_map(&request)) {
        Some(filter) => state.engine.tokens().list(customer.id, &filter).await.map_err(ApiError::from_fault)?,
        None => Vec::new(),
    };
    let views: Vec<_> = tokens.iter().map(|token| TokenJson::of(token, TokenView::Full)).collect();
    Ok(crate::json_ok(views))
}

/// One of the caller's tokens.
#[utoipa::path(
    get,
    path = "/dnapi/token/v1/tokens/{uuid}",
    tag = "Token API",
    params(("uuid" = String, Path, min_length = 1, format = Uuid, description = "The token's uuid.")),
    responses(
        (status = 200, description = "The token, with its codes and `device_uuid`.", body = TokenJson),
        (status = 404, description = "No token of the caller's with this uuid: the JSON string `\"Not found\"`.", content_type = "application/json", body = String, example = json!("Not found")),
        ApiKeyFaults,
    ),
    security(("dn_api_key" = [], "dn_api_secret" = []))
)]
async fn get_token(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let customer = authenticate(&state, &request, Scope::TokenApi).await?;
    let Ok(uuid) = Uuid::parse_str(&path) else {
        return Err(ApiError::NotFound(NOT_FOUND));
    };
    match state.engine.tokens().find(customer.id, uuid).await.map_err(ApiError::from_fault)? {
        Some(token) => Ok(crate::json_ok(TokenJson::of(&token, TokenView::Full))),
        None => Err(ApiError::NotFound(NOT_FOUND)),
    }
}

fn owner_change_error(mode: ErrorStatus, error: EngineError) -> ApiError {
    match error {
        EngineError::Rejected(Rejection::Token(TokenRejection::NothingToUpdate)) => {
            ApiError::business(mode, StatusCode::BAD_REQUEST, "Nothing to update: give 'clearstate' or 'info'.")
        }
        EngineError::Rejected(_) => ApiError::NotFound(NOT_FOUND),
        fault => ApiError::from_fault(fault),
    }
}

/// Change a token's `clearstate` or `info`, in any state.
#[utoipa::path(
    put,
    path = "/dnapi/token/v1/tokens/{uuid}",
    tag = "Token API",
    params(("uuid" = String, Path, min_length = 1, format = Uuid, description = "The token's uuid.")),
    request_body(content = TokenUpdate, content_type = "application/json"),
    responses(
        (status = 200, description = "The changed token, without `device_uuid`.", body = TokenJson),
        (status = 400, description = "`Nothing to update: give 'clearstate' or 'info'.`, `Invalid value for 'clearstate'`, \
            or a body that is no JSON object or array.", body = GlobalError),
        (status = 404, description = "No token of the caller's with this uuid: the JSON string `\"Not found\"`.", content_type = "application/json", body = String, example = json!("Not found")),
        BodyFaults,
        ApiKeyFaults,
    ),
    security(("dn_api_key" = [], "dn_api_secret" = []))
)]
async fn update_token(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let customer = authenticate(&state, &request, Scope::TokenApi).await?;
    let body = read_json(&request, payload).await?;
    let Ok(uuid) = Uuid::parse_str(&path) else {
        return Err(ApiError::NotFound(NOT_FOUND));
    };
    let fields = Fields(&body);
    let clearstate = fields.integer("clearstate").map_err(|_| {
        ApiError::business(state.error_status, StatusCode::BAD_REQUEST, "Invalid value for 'clearstate'")
    })?;
    let info = fields.get("info").cloned();
    let token = state
        .engine
        .tokens()
        .update(customer.id, uuid, clearstate, info)
        .await
        .map_err(|error| owner_change_error(state.error_status, error))?;
    Ok(crate::json_ok(TokenJson::of(&token, TokenView::Row)))
}

/// Delete an OPEN token (its state becomes DELETED).
#[utoipa::path(
    delete,
    path = "/dnapi/token/v1/tokens/{uuid}",
    tag = "Token API",
    params(
        ("uuid" = String, Path, min_length = 1, format = Uuid, description = "The token's uuid."),
        ("device_uuid" = String, Query, format = Uuid, description = "The phone the token was issued to."),
    ),
    responses(
        (status = 200, description = "The deleted token, without `device_uuid`.", body = TokenJson),
        (status = 404, description = "No such OPEN token of this phone's: the JSON string `\"Not found\"`.", content_type = "application/json", body = String, example = json!("Not found")),
        ApiKeyFaults,
    ),
    security(("dn_api_key" = [], "dn_api_secret" = []))
)]
async fn delete_token(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let customer = authenticate(&state, &request, Scope::TokenApi).await?;
    let device = query_map(&request).get("device_uuid").and_then(|text| Uuid::parse_str(text).ok());
    let (Ok(uuid), Some(device)) = (Uuid::parse_str(&path), device) else {
        return Err(ApiError::NotFound(NOT_FOUND));
    };
    let token = state
        .engine
        .tokens()
        .delete(customer.id, uuid, device)
        .await
        .map_err(|error| owner_change_error(state.error_status, error))?;
    Ok(crate::json_ok(TokenJson::of(&token, TokenView::Row)))
}
