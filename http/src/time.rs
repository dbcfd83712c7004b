//! Wire timestamps: ISO-8601 UTC with milliseconds, as JavaScript's `Date.toJSON` writes them.

use chrono::{DateTime, SecondsFormat};

/// Epoch milliseconds, or an RFC 3339 date-time, as epoch milliseconds.
pub fn parse_millis(text: &str) -> Option<i64> {
    text.parse::<i64>().ok().or_else(|| DateTime::parse_from_rfc3339(text).ok().map(|time| time.timestamp_millis()))
}

pub fn iso_millis(millis: i64) -> Option<String> {
    DateTime::from_timestamp_millis(millis).map(|time| time.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// Serialise an epoch-ms field as the original's `TS`.
pub fn serialize<S: serde::Serializer>(millis: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    match iso_millis(*millis) {
        Some(text) => serializer.serialize_str(&text),
        None => serializer.serialize_none(),
    }
}

pub fn serialize_option<S: serde::Serializer>(millis: &Option<i64>, serializer: S) -> Result<S::Ok, S::Error> {
    match millis.and_then(iso_millis) {
        Some(text) => serializer.serialize_str(&text),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn millis_render_like_javascript() {
        assert_eq!(super::iso_millis(1_583_857_417_123).as_deref(), Some("2020-03-10T16:23:37.123Z"));
    }
}
