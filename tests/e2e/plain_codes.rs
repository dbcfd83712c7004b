//! Plain-code mode (customer parameter USE_PLAIN_CODES): 6-digit plain codes, 6-digit secure
//! codes, and the 12-character short radiocode typed in at an ATM.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::flows::{uuid_of, Scene};
use crate::harness::{Backend, TestEnv};
use crate::phone::{hex, long_radiocode, short_radiocode};
use crate::wire::{assert_claim_error_body, INVALID_CODE};

/// Tokens issued to check that plain codes are distinct.
const PLAIN_CODE_TOKENS: usize = 8;

/// The parameter is set before the customer's first request, so no server cache can hide it.
async fn plain_code_scene(env: &TestEnv) -> Scene {
    let customer = env.customer("bank@example.com");
    env.set_param("bank@example.com", "USE_PLAIN_CODES", "true");
    env.scene_for(customer).await
}

fn is_six_digits(text: &str) -> bool {
    text.len() == 6 && text.bytes().all(|byte| byte.is_ascii_digit())
}

pub async fn plain_code_tokens_are_claimed_with_the_short_radiocode(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let scene = plain_code_scene(&env).await;

    let mut plain_codes = HashSet::new();
    let mut tokens = Vec::new();
    for _ in 0..PLAIN_CODE_TOKENS {
        let token = env.issue(&scene.bank, &scene.phone, 2000).await;
        let plain_code = token["plain_code"].as_str().unwrap_or_else(|| panic!("no plain_code: {token}"));
        assert!(is_six_digits(plain_code), "plain_code must be 6 digits: {token}");
        assert!(plain_codes.insert(plain_code.to_owned()), "plain codes are unique: {plain_code} twice");
        let secure = scene.phone.key.decrypt(token["secure_code"].as_str().expect("secure_code"));
        let digits = String::from_utf8(secure.clone()).unwrap_or_default();
        assert!(is_six_digits(&digits), "plain-mode secure code is 6 ASCII digits, got {secure:?}");
        tokens.push(token);
    }
    let view = env.token(&scene.bank, &uuid_of(&tokens[0])).await;
    assert_eq!(view["plain_code"], tokens[0]["plain_code"], "the owner sees the plain code");

    // Short form: plain code + secure digits, 12 characters.
    let radiocode = short_radiocode(&tokens[0], scene.phone.key);
    assert_eq!(radiocode.len(), 12);
    let reply = env.claim(&scene.cash, &scene.atm, &radiocode).await;
    let locked = reply.ok();
    assert_eq!(locked["uuid"], tokens[0]["uuid"], "the short code finds the token: {}", reply.describe());
    assert_eq!(locked["state"], "LOCKED");
    assert!(locked.get("plain_code").is_none(), "V-locked has no plain_code: {locked}");
    let view = env.token(&scene.bank, &uuid_of(&tokens[0])).await;
    assert_eq!(view["plain_code"], tokens[0]["plain_code"], "a LOCKED token keeps its plain code");

    let uuid = uuid_of(&tokens[0]);
    let confirmed = env.confirm(&scene.cash, &scene.atm, &uuid, json!({"state": "COMPLETED"})).await;
    assert_eq!(confirmed.ok()["plain_code"], Value::Null);
    assert_eq!(confirmed.json["secure_code"], "");
    assert_eq!(env.token(&scene.bank, &uuid).await["plain_code"], Value::Null);

    // The long (QR) form works for plain-code tokens too: uuid + hex of the ASCII digits.
    let reply = env.claim(&scene.cash, &scene.atm, &long_radiocode(&tokens[1], scene.phone.key)).await;
    assert_eq!(reply.ok()["uuid"], tokens[1]["uuid"]);
}

pub async fn a_wrong_short_code_rejects_a_plain_code_token(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let scene = plain_code_scene(&env).await;
    let token = env.issue(&scene.bank, &scene.phone, 2000).await;
    let uuid = uuid_of(&token);
    let plain_code = token["plain_code"].as_str().expect("plain_code").to_owned();
    let digits = String::from_utf8(scene.phone.key.decrypt(token["secure_code"].as_str().expect("secure_code")))
        .expect("ASCII digits");
    let wrong = if digits == "000000" { "111111" } else { "000000" };

    let reply = env.claim(&scene.cash, &scene.atm, &format!("{plain_code}{wrong}")).await;
    reply.assert_status(403);
    assert_claim_error_body(&reply, INVALID_CODE);
    let view = env.token(&scene.bank, &uuid).await;
    assert_eq!(view["state"], "REJECTED", "a wrong short code kills the token: {view}");
    assert_eq!(view["plain_code"], Value::Null, "a rejected token frees its plain code: {view}");
    assert_eq!(view["secure_code"], "");

    // The plain code is gone, so the right short code no longer finds the token.
    let reply = env.claim(&scene.cash, &scene.atm, &format!("{plain_code}{digits}")).await;
    reply.assert_status(403);
    assert_claim_error_body(&reply, &format!("Token not found: {plain_code}"));
    let reply = env.claim(&scene.cash, &scene.atm, &format!("{uuid}{}", hex(digits.as_bytes()))).await;
    reply.assert_status(403);
    assert_claim_error_body(&reply, crate::wire::NOT_OPEN);
    assert_eq!(env.token_state(&scene.bank, &uuid).await, "REJECTED");
}

/// Without the parameter, tokens carry no plain code and short radiocodes find nothing.
pub async fn tokens_have_no_plain_code_unless_the_customer_asks(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let scene = env.scene("bank@example.com").await;
    env.customer("other-bank@example.com");
    env.set_param("other-bank@example.com", "USE_PLAIN_CODES", "true");
    let token = env.issue(&scene.bank, &scene.phone, 2000).await;
    assert_eq!(token["plain_code"], Value::Null, "plain codes are per customer: {token}");
    assert_eq!(scene.phone.key.decrypt(token["secure_code"].as_str().expect("secure_code")).len(), 6);
    env.set_param(&scene.email, "USE_PLAIN_CODES", "false");
    let token = env.issue(&scene.bank, &scene.phone, 2000).await;
    assert_eq!(token["plain_code"], Value::Null, "USE_PLAIN_CODES=false: {token}");
}
