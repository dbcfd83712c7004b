//! Request bodies as the original's body-parser reads them: JSON only when the content type
//! says so, `{}` otherwise, a 100 kB limit, and only objects or arrays at the top level. The
//! whole body must arrive within the body deadline (`body_timeout_ms`, 30 s): a gap-between-reads
//! timeout alone would keep a client that sends a byte every few seconds forever.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest};
use futures_util::StreamExt as _;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// The original's body limit (body-parser's default).
pub const BODY_LIMIT_BYTES: usize = 100 * 1024;
/// How long a whole request body may take to arrive, unless configured otherwise.
pub const BODY_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);

pub async fn read_json(request: &HttpRequest, payload: web::Payload) -> Result<Value, ApiError> {
    let deadline = request
        .app_data::<web::Data<crate::AppState>>()
        .map_or(BODY_TIMEOUT_DEFAULT, |state| state.body_timeout);
    match actix_web::rt::time::timeout(deadline, read_json_body(request, payload)).await {
        Ok(answer) => answer,
        Err(_) => Err(ApiError::BodyTimeout),
    }
}

async fn read_json_body(request: &HttpRequest, mut payload: web::Payload) -> Result<Value, ApiError> {
    if !is_json(request) {
        return Ok(Value::Object(Map::new()));
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<usize>().ok());
    if declared.is_some_and(|length| length > BODY_LIMIT_BYTES) {
        return Err(ApiError::TooLarge);
    }
    let mut bytes = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|error| ApiError::bad_request(error.to_string()))?;
        if bytes.len() + chunk.len() > BODY_LIMIT_BYTES {
            return Err(ApiError::TooLarge);
        }
        bytes.extend_from_slice(&chunk);
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    let value: Value = serde_json::from_slice(&bytes).map_err(|error| ApiError::bad_request(error.to_string()))?;
    if contains_nul(&value) {
        return Err(ApiError::bad_request(NUL_REFUSED));
    }
    match value {
        Value::Object(_) | Value::Array(_) => Ok(value),
        other => Err(ApiError::bad_request(format!("Unexpected token {other} in JSON at position 0"))),
    }
}

/// The 400's message for a NUL in a body, path or query (the store cannot hold it; see
/// `dncash::text`).
pub const NUL_REFUSED: &str = "Text must not contain NUL characters (\\u0000 or %00).";

/// Whether any string or key in `value` holds a NUL.
fn contains_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(map) => map.iter().any(|(key, item)| key.contains('\0') || contains_nul(item)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

fn is_json(request: &HttpRequest) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

/// Typed reads of body fields. A field of the wrong type is `Err`, a missing or null one `None`.
pub struct Fields<'a>(pub &'a Value);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrongType;

impl<'a> Fields<'a> {
    pub fn get(&self, name: &str) -> Option<&'a Value> {
        self.0.get(name).filter(|value| !value.is_null())
    }

    pub fn string(&self, name: &str) -> Result<Option<String>, WrongType> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(WrongType),
        }
    }

    /// Integers; numeric strings too, as MySQL coerced them for the original.
    pub fn integer(&self, name: &str) -> Result<Option<i64>, WrongType> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(number)) => number.as_i64().map(Some).ok_or(WrongType),
            Some(Value::String(text)) => text.trim().parse().map(Some).map_err(|_| WrongType),
            Some(_) => Err(WrongType),
        }
    }

    pub fn float(&self, name: &str) -> Result<Option<f64>, WrongType> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(number)) => number.as_f64().map(Some).ok_or(WrongType),
            Some(Value::String(text)) => text.trim().parse().map(Some).map_err(|_| WrongType),
            Some(_) => Err(WrongType),
        }
    }
}
