//! What the dncash-io wire looks like: key orders of the JSON views, timestamp and uuid shapes,
//! the error bodies, and the two error-status modes.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::api::Reply;

/// Device row (§5.3).
pub const DEVICE_KEYS: [&str; 12] =
    ["id", "customer_id", "uuid", "created", "type", "status", "pubkey", "algorithm", "lat", "lon", "refname", "info"];

/// Token V-row (§5.4): create, update, delete, confirm.
pub const V_ROW_KEYS: [&str; 16] = [
    "uuid",
    "created",
    "updated",
    "type",
    "code_type",
    "plain_code",
    "secure_code",
    "amount",
    "symbol",
    "state",
    "clearstate",
    "expires",
    "refname",
    "lockrefname",
    "info",
    "processing_info",
];

/// Token V-full: V-row plus the owner device's uuid (Token API reads).
pub const V_FULL_KEYS: [&str; 17] = [
    "uuid",
    "created",
    "updated",
    "type",
    "code_type",
    "plain_code",
    "secure_code",
    "amount",
    "symbol",
    "state",
    "clearstate",
    "expires",
    "refname",
    "lockrefname",
    "info",
    "processing_info",
    "device_uuid",
];

/// Token V-locked: V-row without both codes (Cash API claim).
pub const V_LOCKED_KEYS: [&str; 14] = [
    "uuid",
    "created",
    "updated",
    "type",
    "code_type",
    "amount",
    "symbol",
    "state",
    "clearstate",
    "expires",
    "refname",
    "lockrefname",
    "info",
    "processing_info",
];

pub const INVALID_CREDENTIALS: &str = "Invalid API access key or secret";
pub const NOT_OPEN: &str = "Token not in OPEN state.";
pub const INVALID_CODE: &str = "Invalid token code";

#[track_caller]
pub fn assert_keys(reply: &Reply, expected: &[&str]) {
    assert_eq!(reply.keys(), expected, "key order differs: {}", reply.describe());
}

/// Top-level keys of a JSON object text, in the order they appear.
pub fn object_keys(text: &str) -> Vec<String> {
    serde_json::from_str::<Keys>(text).map(|keys| keys.0).unwrap_or_default()
}

/// Key order of each object in a JSON array text.
pub fn array_object_keys(text: &str) -> Vec<Vec<String>> {
    serde_json::from_str::<Vec<Keys>>(text)
        .map(|items| items.into_iter().map(|keys| keys.0).collect())
        .unwrap_or_default()
}

struct Keys(Vec<String>);

impl<'de> Deserialize<'de> for Keys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(KeysVisitor)
    }
}

struct KeysVisitor;

impl<'de> Visitor<'de> for KeysVisitor {
    type Value = Keys;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
        let mut keys = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            map.next_value::<IgnoredAny>()?;
            keys.push(key);
        }
        Ok(Keys(keys))
    }
}

pub fn now_millis() -> i64 {
    let elapsed = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970");
    i64::try_from(elapsed.as_millis()).expect("epoch millis fit in i64")
}

/// `2020-03-10T16:23:37.123Z` for epoch milliseconds.
pub fn iso_millis(millis: i64) -> String {
    let days = millis.div_euclid(86_400_000);
    let in_day = millis.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}

/// Epoch milliseconds of a `TS` string, or `None` when it is not exactly that shape.
pub fn parse_iso_millis(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    if bytes.len() != shape.len() {
        return None;
    }
    for (byte, expected) in bytes.iter().zip(shape.bytes()) {
        let fits = if expected == b'd' { byte.is_ascii_digit() } else { *byte == expected };
        if !fits {
            return None;
        }
    }
    let number = |range: std::ops::Range<usize>| text[range].parse::<i64>().ok();
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second, milli) = (number(11..13)?, number(14..16)?, number(17..19)?, number(20..23)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + milli)
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A `TS` string within a few minutes of now (catches seconds-vs-millis and time zone slips).
#[track_caller]
pub fn assert_recent_timestamp(value: &Value, what: &str) -> i64 {
    let text = value.as_str().unwrap_or_else(|| panic!("{what}: expected a TS string, got {value}"));
    let millis = parse_iso_millis(text)
        .unwrap_or_else(|| panic!("{what}: `{text}` is not of the form 2020-03-10T16:23:37.123Z"));
    let skew = (millis - now_millis()).abs();
    assert!(skew < 5 * 60_000, "{what}: `{text}` is {skew} ms away from now");
    millis
}

/// A lower-case, hyphenated v4 uuid.
#[track_caller]
pub fn assert_v4_uuid(value: &Value, what: &str) -> String {
    let text = value.as_str().unwrap_or_else(|| panic!("{what}: expected a uuid string, got {value}"));
    let uuid = Uuid::parse_str(text).unwrap_or_else(|_| panic!("{what}: `{text}` is not a uuid"));
    assert_eq!(uuid.get_version_num(), 4, "{what}: `{text}` is not a v4 uuid");
    assert_eq!(text, uuid.hyphenated().to_string(), "{what}: `{text}` is not lower-case hyphenated");
    text.to_owned()
}

/// ERR500-shaped body `{"error":{},"message":M}`, whatever the status.
#[track_caller]
pub fn assert_error_body(reply: &Reply, message: &str) {
    assert_eq!(reply.json, json!({"error": {}, "message": message}), "wrong error body: {}", reply.describe());
}

/// `{"error":{},"message":<any text>}`; returns the message.
#[track_caller]
pub fn assert_error_shape(reply: &Reply) -> String {
    let object =
        reply.json.as_object().unwrap_or_else(|| panic!("error body is not a JSON object: {}", reply.describe()));
    assert_eq!(object.get("error"), Some(&json!({})), "error body needs `\"error\":{{}}`: {}", reply.describe());
    assert_eq!(object.len(), 2, "error body has extra keys: {}", reply.describe());
    object
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("error body needs a string `message`: {}", reply.describe()))
        .to_owned()
}

/// Claim failure body `{"error":M}`, whatever the status.
#[track_caller]
pub fn assert_claim_error_body(reply: &Reply, message: &str) {
    assert_eq!(reply.json, json!({"error": message}), "wrong claim error body: {}", reply.describe());
}

/// 404 with the bare JSON string `"Not found"`.
#[track_caller]
pub fn assert_not_found(reply: &Reply) {
    reply.assert_status(404);
    assert_eq!(reply.json, json!("Not found"), "404 body must be the JSON string \"Not found\": {}", reply.describe());
}

/// An unknown path outside `/dnapi`: 404 `{"error":"Not Found"}` whatever the error mode.
#[track_caller]
pub fn assert_plain_not_found(reply: &Reply) {
    reply.assert_status(404);
    assert_eq!(
        reply.json,
        json!({"error": "Not Found"}),
        "wrong body for an unknown path outside /dnapi: {}",
        reply.describe()
    );
}

/// 401 `{"error":"Invalid API access key or secret"}`.
#[track_caller]
pub fn assert_unauthorized(reply: &Reply) {
    reply.assert_status(401);
    assert_eq!(reply.json, json!({"error": INVALID_CREDENTIALS}), "wrong 401 body: {}", reply.describe());
}

/// The server's `--error-status` flag: the original's statuses, or 4xx for client mistakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorMode {
    Original,
    ClientErrors,
}

impl ErrorMode {
    pub fn serve_args(self) -> &'static [&'static str] {
        match self {
            // The default: no flag at all.
            Self::Original => &[],
            Self::ClientErrors => &["--error-status", "4xx"],
        }
    }

    /// The original's status in original mode; in 4xx mode a business failure (500, or the
    /// claim's 403) may become any 4xx, while statuses that already were 4xx stay as they are.
    #[track_caller]
    pub fn assert_status(self, reply: &Reply, original: u16) {
        match (self, original) {
            (Self::Original, _) => {
                reply.assert_status(original);
            }
            (Self::ClientErrors, 500 | 403) => assert!(
                reply.status.is_client_error(),
                "expected a 4xx (original: {original}) with --error-status 4xx: {}",
                reply.describe()
            ),
            (Self::ClientErrors, _) => {
                reply.assert_status(original);
            }
        }
    }

    /// An unknown route: 500 in original mode, 404 in 4xx mode; the same body.
    #[track_caller]
    pub fn assert_unknown_route(self, reply: &Reply, original_url: &str) {
        match self {
            Self::Original => reply.assert_status(500),
            Self::ClientErrors => reply.assert_status(404),
        };
        assert_error_body(reply, &format!("Not Found: {original_url}"));
    }

    /// A business failure with an ERR500 body.
    #[track_caller]
    pub fn assert_business_error(self, reply: &Reply, message: &str) {
        self.assert_status(reply, 500);
        assert_error_body(reply, message);
    }

    /// A claim failure: 403 `{"error":M}` (a 4xx with the same body in 4xx mode).
    #[track_caller]
    pub fn assert_claim_error(self, reply: &Reply, message: &str) {
        self.assert_status(reply, 403);
        assert_claim_error_body(reply, message);
    }

    /// Bad input of any kind: an error in the protocol's format, never a success. In original
    /// mode the status may be 400 or 500; in 4xx mode it must be a 4xx.
    #[track_caller]
    pub fn assert_rejected_input(self, reply: &Reply) -> String {
        match self {
            Self::Original => {
                assert!(matches!(reply.status.as_u16(), 400 | 500), "expected 400 or 500: {}", reply.describe())
            }
            Self::ClientErrors => {
                assert!(reply.status.is_client_error(), "expected a 4xx: {}", reply.describe())
            }
        }
        assert_error_shape(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        for millis in [0, 1_583_857_417_123, 951_782_400_000, 4_102_444_799_999] {
            assert_eq!(parse_iso_millis(&iso_millis(millis)), Some(millis));
        }
        assert_eq!(iso_millis(1_583_857_417_123), "2020-03-10T16:23:37.123Z");
        assert_eq!(parse_iso_millis("2020-03-10T16:23:37Z"), None);
    }

    #[test]
    fn key_order_is_read_from_the_text() {
        assert_eq!(object_keys(r#"{"b":1,"a":{"z":1,"y":2},"c":[1]}"#), ["b", "a", "c"]);
        assert_eq!(array_object_keys(r#"[{"b":1,"a":2},{"c":3}]"#), vec![vec!["b", "a"], vec!["c"]]);
    }
}
