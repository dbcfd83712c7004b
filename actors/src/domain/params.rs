//! Customer parameters: JSON values whose "on" reading follows JavaScript truthiness, as in the
//! original (so `{}` turns a flag on, and DELETE is how a flag goes off).

use serde_json::Value;

pub const USE_PLAIN_CODES: &str = "USE_PLAIN_CODES";
pub const PARTIAL_CASHOUTS: &str = "PARTIAL_CASHOUTS";
pub const USE_FIXED_TRIGGER_CODES: &str = "USE_FIXED_TRIGGER_CODES";

pub fn is_on(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Bool(flag)) => *flag,
        Some(Value::Number(number)) => number.as_f64().is_some_and(|value| value != 0.0 && !value.is_nan()),
        Some(Value::String(text)) => !text.is_empty(),
        Some(Value::Array(_) | Value::Object(_)) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flags_follow_javascript_truthiness() {
        for on in [json!(true), json!(1), json!("x"), json!({}), json!([])] {
            assert!(is_on(Some(&on)), "{on} should be on");
        }
        for off in [json!(false), json!(0), json!(""), json!(null)] {
            assert!(!is_on(Some(&off)), "{off} should be off");
        }
        assert!(!is_on(None));
    }
}
