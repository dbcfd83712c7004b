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
    read_json_limited(request, payload, BODY_LIMIT_BYTES).await
}

/// [`read_json`] with another size limit (the Ledger API's batches are larger).
pub async fn read_json_limited(request: &HttpRequest, payload: web::Payload, limit: usize) -> Result<Value, ApiError> {
    let deadline =
        request.app_data::<web::Data<crate::AppState>>().map_or(BODY_TIMEOUT_DEFAULT, |state| state.body_timeout);
    match actix_web::rt::time::timeout(deadline, read_json_body(request, payload, limit)).await {
        Ok(answer) => answer,
        Err(_) => Err(ApiError::BodyTimeout),
    }
}

async fn read_json_body(request: &HttpRequest, mut payload: web::Payload, limit: usize) -> Result<Value, ApiError> {
    if !is_json(request) {
        return Ok(Value::Object(Map::new()));
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(ApiError::TooLarge);
    }
    let mut bytes = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|error| ApiError::bad_request(error.to_string()))?;
        if bytes.len() + chunk.len() > limit {
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

/// Whether the request says its body is JSON.
pub fn is_json(request: &HttpRequest) -> bool {
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

/// A float that is a whole number within i64's range (2^63 itself is just outside).
fn whole(value: f64) -> Option<i64> {
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    (value.fract() == 0.0 && (-LIMIT..LIMIT).contains(&value)).then_some(value as i64)
}

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

    /// Integers; numeric strings too, as MySQL coerced them for the original. JSON has one
    /// number type: `100.0` is the integer 100 (JavaScript and JSON Schema agree), while
    /// `100.5` and numbers beyond i64 are not integers.
    pub fn integer(&self, name: &str) -> Result<Option<i64>, WrongType> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(number)) => {
                number.as_i64().or_else(|| whole(number.as_f64()?)).map(Some).ok_or(WrongType)
            }
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn whole_floats_are_integers_and_other_numbers_are_not() {
        let body = json!({"a": 100.0, "b": 100.5, "c": 1e300, "d": -7, "e": " 12 ", "f": true});
        let fields = Fields(&body);
        assert_eq!(fields.integer("a"), Ok(Some(100)));
        assert_eq!(fields.integer("b"), Err(WrongType));
        assert_eq!(fields.integer("c"), Err(WrongType));
        assert_eq!(fields.integer("d"), Ok(Some(-7)));
        assert_eq!(fields.integer("e"), Ok(Some(12)));
        assert_eq!(fields.integer("f"), Err(WrongType));
        assert_eq!(fields.integer("missing"), Ok(None));
    }
}
