//! The Crypto Capital v1 envelopes (fact sheet §2): an op from the client,
//! `{"op":…,"nonce":…,"params":{…}}`, and a message from the server,
//! `{"msg":…,"nonce":…,"data":…,"signed":…}`. A nonce is echoed exactly as received.

use serde_json::{Map, Number, Value};

/// One op as received.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    pub name: String,
    /// The client's correlation tag, echoed on every message the op causes.
    pub nonce: Option<Number>,
    pub params: Map<String, Value>,
}

/// Why a frame is not an op; the error message's text, and the nonce if one could be read.
#[derive(Debug, Clone, PartialEq)]
pub struct BadOp {
    pub message: &'static str,
    pub nonce: Option<Number>,
}

/// Read a text frame as an op.
pub fn parse(text: &str) -> Result<Op, BadOp> {
    let bad = |message, nonce| BadOp { message, nonce };
    let Ok(Value::Object(mut fields)) = serde_json::from_str::<Value>(text) else {
        return Err(bad("Malformed message: expected a JSON object", None));
    };
    let nonce = match fields.remove("nonce") {
        None | Some(Value::Null) => None,
        Some(Value::Number(number)) => Some(number),
        Some(_) => return Err(bad("nonce must be a number", None)),
    };
    let name = match fields.remove("op") {
        Some(Value::String(name)) => name,
        Some(_) => return Err(bad("op must be a string", nonce)),
        None => return Err(bad("Missing op", nonce)),
    };
    let params = match fields.remove("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(params)) => params,
        Some(_) => return Err(bad("params must be an object", nonce)),
    };
    Ok(Op { name, nonce, params })
}

/// A message to the client, `{"msg":…,"nonce":…,"data":…,"signed":…}`: `data` is JSON text,
/// embedded as it is (a signature signs exactly these bytes).
pub fn render(msg: &str, nonce: Option<&Number>, data: &str, signed: Option<&str>) -> String {
    let quoted = |text: &str| Value::String(text.to_owned()).to_string();
    let mut out = String::with_capacity(data.len() + 160);
    out.push_str(r#"{"msg":"#);
    out.push_str(&quoted(msg));
    if let Some(nonce) = nonce {
        out.push_str(r#","nonce":"#);
        out.push_str(&nonce.to_string());
    }
    out.push_str(r#","data":"#);
    out.push_str(data);
    if let Some(signed) = signed {
        out.push_str(r#","signed":"#);
        out.push_str(&quoted(signed));
    }
    out.push('}');
    out
}

/// An unsigned message whose data is a plain string (`challenge`, `auth`, `error`).
pub fn text(msg: &str, nonce: Option<&Number>, data: &str) -> String {
    render(msg, nonce, &Value::String(data.to_owned()).to_string(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_op_keeps_its_nonce_as_sent() {
        let op = parse(r#"{"op":"getinfo","nonce":2}"#).unwrap_or_else(|bad| panic!("{bad:?}"));
        assert_eq!(op.name, "getinfo");
        assert_eq!(op.nonce, Some(Number::from(2)));
        assert!(op.params.is_empty());
        let op = parse(r#"{"op":"history","params":{"limit":2}}"#).unwrap_or_else(|bad| panic!("{bad:?}"));
        assert_eq!(op.nonce, None);
        assert_eq!(op.params.get("limit"), Some(&Value::from(2)));
        let big = parse(r#"{"op":"x","nonce":18446744073709551615}"#).unwrap_or_else(|bad| panic!("{bad:?}"));
        assert_eq!(
            text("error", big.nonce.as_ref(), "e"),
            r#"{"msg":"error","nonce":18446744073709551615,"data":"e"}"#
        );
        let half = parse(r#"{"op":"x","nonce":0.5}"#).unwrap_or_else(|bad| panic!("{bad:?}"));
        assert_eq!(text("error", half.nonce.as_ref(), "e"), r#"{"msg":"error","nonce":0.5,"data":"e"}"#);
    }

    #[test]
    fn frames_that_are_not_ops_say_why_and_keep_a_readable_nonce() {
        assert_eq!(parse("{").map_err(|bad| bad.nonce), Err(None));
        assert_eq!(parse("[1]").map_err(|bad| bad.nonce), Err(None));
        assert_eq!(parse(r#"{"op":"x","nonce":"7"}"#).map_err(|bad| bad.nonce), Err(None));
        assert_eq!(parse(r#"{"nonce":7}"#), Err(BadOp { message: "Missing op", nonce: Some(Number::from(7)) }));
        assert_eq!(parse(r#"{"op":5,"nonce":7}"#).map_err(|bad| bad.message), Err("op must be a string"));
        assert_eq!(parse(r#"{"op":"x","params":[]}"#).map_err(|bad| bad.message), Err("params must be an object"));
    }

    #[test]
    fn messages_render_in_the_documented_field_order() {
        assert_eq!(text("challenge", None, "abc"), r#"{"msg":"challenge","data":"abc"}"#);
        let nonce = Number::from(7);
        let signed = render("balance", Some(&nonce), r#"{"USD":"1.00"}"#, Some("sig"));
        assert_eq!(signed, r#"{"msg":"balance","nonce":7,"data":{"USD":"1.00"},"signed":"sig"}"#);
        assert_eq!(text("error", None, "a \"b\"\n"), r#"{"msg":"error","data":"a \"b\"\n"}"#);
    }
}
