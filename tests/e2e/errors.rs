//! Every failure answers in the protocol's own format and changes nothing. Each group runs in
//! the default (original statuses) mode and with `--error-status 4xx`.

use awc::http::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::api::{Body, Creds, Reply};
use crate::flows::{claim_path, confirm_path, token_path, uuid_of, Scene, CASH_DEVICES, TOKENS, TOKEN_DEVICES};
use crate::harness::{Backend, TestEnv};
use crate::phone::{long_radiocode, PHONE_A_PKCS1, PHONE_C_2048};
use crate::wire::{
    assert_error_body, assert_error_shape, assert_not_found, assert_plain_not_found, assert_unauthorized, ErrorMode,
    NOT_OPEN,
};

const EC_PUBLIC_KEY: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keys/ec_p256.spki.pub.pem"));
const RSA_PRIVATE_KEY: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keys/phone_a_1024.private.pem"));

const ONLY_FINAL_STATES: &str =
    "Update token state: only values COMPLETED, CANCELED, FAILED, REJECTED, RETRACTED allowed.";

pub async fn request_errors_answer_in_the_protocol_format(backend: Backend) {
    request_errors(backend, ErrorMode::Original).await;
}

pub async fn request_errors_answer_with_4xx_statuses_when_asked(backend: Backend) {
    request_errors(backend, ErrorMode::ClientErrors).await;
}

pub async fn token_api_errors_answer_in_the_protocol_format(backend: Backend) {
    token_api_errors(backend, ErrorMode::Original).await;
}

pub async fn token_api_errors_answer_with_4xx_statuses_when_asked(backend: Backend) {
    token_api_errors(backend, ErrorMode::ClientErrors).await;
}

pub async fn claim_errors_answer_in_the_protocol_format(backend: Backend) {
    claim_errors(backend, ErrorMode::Original).await;
}

pub async fn claim_errors_answer_with_4xx_statuses_when_asked(backend: Backend) {
    claim_errors(backend, ErrorMode::ClientErrors).await;
}

pub async fn confirm_errors_answer_in_the_protocol_format(backend: Backend) {
    confirm_errors(backend, ErrorMode::Original).await;
}

pub async fn confirm_errors_answer_with_4xx_statuses_when_asked(backend: Backend) {
    confirm_errors(backend, ErrorMode::ClientErrors).await;
}

fn raw(content_type: &'static str, bytes: &[u8]) -> Body {
    Body::Raw { content_type, bytes: bytes.to_vec() }
}

/// Everything the bank can see, to compare before and after a failed request.
async fn snapshot(env: &TestEnv, scene: &Scene) -> (Vec<Value>, Vec<Value>) {
    (env.tokens(&scene.bank, "").await, env.devices(&scene.bank).await)
}

/// Body parsing, size limit, authentication, routing and JSON types.
async fn request_errors(backend: Backend, mode: ErrorMode) {
    let env = TestEnv::start_with(backend, mode.serve_args()).await;
    let scene = env.scene("bank@example.com").await;
    let open = env.issue(&scene.bank, &scene.phone, 5000).await;
    let locked_token = env.issue(&scene.bank, &scene.phone, 6000).await;
    env.claim_ok(&scene.cash, &scene.atm, &locked_token, &scene.phone).await;
    let before = snapshot(&env, &scene).await;

    // Malformed JSON, and JSON whose top level is neither object nor array (strict mode).
    for body in [&b"{\"amount\": "[..], b"not json", b"{'a':1}", b"\"just a string\"", b"42"] {
        let reply = env.api.request(Method::POST, TOKENS, Some(&scene.bank), raw("application/json", body)).await;
        reply.assert_status(400);
        let message = assert_error_shape(&reply);
        assert!(!message.is_empty(), "parse errors carry the parser's message: {}", reply.describe());
    }

    // Bodies over 100 kB.
    let padding = "x".repeat(150_000);
    let too_large = [
        (TOKEN_DEVICES, json!({"pubkey": PHONE_A_PKCS1.public_pem, "refname": "big", "info": {"p": padding}})),
        (TOKENS, json!({"device_uuid": scene.phone.uuid, "amount": 1, "symbol": "EUR", "info": {"p": padding}})),
    ];
    for (path, body) in too_large {
        let reply = env.api.post(path, &scene.bank, body).await;
        reply.assert_status(413);
        assert_error_body(&reply, "request entity too large");
    }

    // Credentials: missing, partial, wrong, or of another scope.
    let clearing = env.access(&scene.email, "clearing-api");
    let wrong_secret = Creds { apikey: scene.bank.apikey.clone(), apisecret: scene.cash.apisecret.clone() };
    let unknown = Creds { apikey: "0".repeat(64), apisecret: "0".repeat(64) };
    let empty = Creds { apikey: String::new(), apisecret: String::new() };
    assert_unauthorized(&env.api.request(Method::GET, TOKENS, None, Body::None).await);
    let key_only = [("DN-API-KEY", scene.bank.apikey.as_str())];
    assert_unauthorized(&env.api.request_with_headers(Method::GET, TOKENS, &key_only, Body::None).await);
    let secret_only = [("DN-API-SECRET", scene.bank.apisecret.as_str())];
    assert_unauthorized(&env.api.request_with_headers(Method::GET, TOKENS, &secret_only, Body::None).await);
    for creds in [&wrong_secret, &unknown, &empty, &scene.cash, &clearing] {
        assert_unauthorized(&env.api.get(TOKENS, creds).await);
        let create = json!({"device_uuid": scene.phone.uuid, "amount": 1, "symbol": "EUR"});
        assert_unauthorized(&env.api.post(TOKENS, creds, create).await);
    }
    for creds in [&scene.bank, &clearing, &unknown] {
        let radiocode = long_radiocode(&open, scene.phone.key);
        assert_unauthorized(&env.api.get(&claim_path(&radiocode, &scene.atm), creds).await);
        assert_unauthorized(&env.api.post(CASH_DEVICES, creds, json!({"refname": "atm9"})).await);
        let confirm = json!({"state": "COMPLETED"});
        assert_unauthorized(&env.api.put(&confirm_path(&uuid_of(&locked_token), &scene.atm), creds, confirm).await);
    }

    // Unknown routes: 401 first under an API prefix, then "Not Found: <url>".
    let path = "/dnapi/token/v1/nope?x=1";
    mode.assert_unknown_route(&env.api.get(path, &scene.bank).await, path);
    assert_unauthorized(&env.api.request(Method::GET, path, None, Body::None).await);
    let path = "/dnapi/cash/v1/nope";
    mode.assert_unknown_route(&env.api.get(path, &scene.cash).await, path);
    // The original's namespace in any spelling answers its way, echoing the URL as sent.
    for path in ["/dnapi/nothing", "/DNAPI//Nothing/?x=A", "//dnapi/nothing"] {
        mode.assert_unknown_route(&env.api.get_anonymous(path).await, path);
    }
    // Outside `/dnapi` (a deliberate change: the original answered every path its way) an
    // unknown path is a plain 404 in every mode, and paths are routed exactly as sent.
    for path in ["/nothing/here", "/Health", "/metrics/", "//health", "/DOCS", "/openapi/DNCASH.json"] {
        assert_plain_not_found(&env.api.get_anonymous(path).await);
    }

    // Wrong JSON types: an error in the protocol format, never a success or a crash.
    let phone = scene.phone.uuid.as_str();
    let bad_tokens = [
        json!({"device_uuid": phone, "amount": "abc", "symbol": "EUR"}),
        json!({"device_uuid": phone, "amount": {"value": 1}, "symbol": "EUR"}),
        json!({"device_uuid": phone, "amount": 100, "symbol": ["EUR"]}),
        json!({"device_uuid": phone, "amount": 100, "symbol": "EUR", "expires": {"at": 1}}),
        json!({"device_uuid": 42, "amount": 100, "symbol": "EUR"}),
        json!([1, 2, 3]),
    ];
    for body in bad_tokens {
        mode.assert_rejected_input(&env.api.post(TOKENS, &scene.bank, body).await);
    }
    mode.assert_rejected_input(&env.api.post(TOKEN_DEVICES, &scene.bank, json!({"pubkey": 42})).await);
    mode.assert_rejected_input(
        &env.api.put(&token_path(&uuid_of(&open)), &scene.bank, json!({"clearstate": "high"})).await,
    );
    let confirm = confirm_path(&uuid_of(&locked_token), &scene.atm);
    mode.assert_rejected_input(&env.api.put(&confirm, &scene.cash, json!({"state": 5})).await);
    mode.assert_rejected_input(
        &env.api.put(&confirm, &scene.cash, json!({"state": "COMPLETED", "amount": "abc"})).await,
    );

    // Nothing changed, and the server still serves.
    assert_eq!(snapshot(&env, &scene).await, before, "failed requests must not change anything");
    assert_eq!(env.token_state(&scene.bank, &uuid_of(&locked_token)).await, "LOCKED");

    // A known path with a method it does not have is an unknown route too (4xx mode: any 4xx).
    let path = token_path(&uuid_of(&open));
    let reply = env.api.post(&path, &scene.bank, json!({})).await;
    mode.assert_status(&reply, 500);
    assert_error_body(&reply, &format!("Not Found: {path}"));
    let reply = env.api.request(Method::PATCH, TOKENS, Some(&scene.bank), Body::Json(json!({}))).await;
    mode.assert_status(&reply, 500);
    assert_error_body(&reply, &format!("Not Found: {TOKENS}"));

    env.claim_ok(&scene.cash, &scene.atm, &open, &scene.phone).await;
}

/// Lookups of unknown things, token creation failures and bad device keys.
async fn token_api_errors(backend: Backend, mode: ErrorMode) {
    let env = TestEnv::start_with(backend, mode.serve_args()).await;
    let scene = env.scene("bank@example.com").await;
    let open = env.issue(&scene.bank, &scene.phone, 5000).await;
    let before = snapshot(&env, &scene).await;
    let unknown = Uuid::new_v4().to_string();

    assert_not_found(&env.api.get(&token_path(&unknown), &scene.bank).await);
    assert_not_found(&env.api.get(&token_path("not-a-uuid"), &scene.bank).await);
    assert_not_found(&env.api.get(&format!("{TOKEN_DEVICES}/{unknown}"), &scene.bank).await);
    assert_not_found(&env.api.put(&token_path(&unknown), &scene.bank, json!({"clearstate": 1})).await);
    let delete = format!("{}?device_uuid={}", token_path(&unknown), scene.phone.uuid);
    assert_not_found(&env.api.delete(&delete, &scene.bank).await);

    // Token creation.
    let reply = env.issue_with(&scene.bank, json!({"device_uuid": unknown, "amount": 100, "symbol": "EUR"})).await;
    mode.assert_business_error(&reply, &format!("Sorry, device with UUID {unknown} not found."));
    let reply = env.issue_with(&scene.bank, json!({"amount": 100, "symbol": "EUR"})).await;
    mode.assert_business_error(&reply, "Sorry, device with UUID undefined not found.");
    // A body that is not declared JSON is not parsed: the handler sees `{}`.
    let body = json!({"device_uuid": scene.phone.uuid, "amount": 100, "symbol": "EUR"}).to_string();
    let reply = env.api.request(Method::POST, TOKENS, Some(&scene.bank), raw("text/plain", body.as_bytes())).await;
    mode.assert_business_error(&reply, "Sorry, device with UUID undefined not found.");
    let reply = env.api.request(Method::POST, TOKENS, Some(&scene.bank), raw("application/json", b"")).await;
    mode.assert_business_error(&reply, "Sorry, device with UUID undefined not found.");
    let reply = env.issue_with(&scene.bank, json!({"device_uuid": scene.phone.uuid, "symbol": "EUR"})).await;
    mode.assert_business_error(&reply, "Token could not be created in database");
    let reply = env
        .issue_with(&scene.bank, json!({"device_uuid": scene.phone.uuid, "amount": 100, "symbol": "EUR", "foo": 1}))
        .await;
    mode.assert_business_error(&reply, "Token could not be created in database");
    let reply = env
        .issue_with(
            &scene.bank,
            json!({"device_uuid": scene.phone.uuid, "amount": 100, "symbol": "EUR", "type": "LOAN"}),
        )
        .await;
    mode.assert_business_error(&reply, "Token could not be created in database");

    // Device keys: only RSA public keys in PKCS#1 or SPKI PEM are accepted.
    let broken_pkcs1 = "-----BEGIN RSA PUBLIC KEY-----\nAAAAAAAA\n-----END RSA PUBLIC KEY-----\n";
    let truncated = &PHONE_C_2048.public_pem[..PHONE_C_2048.public_pem.len() / 2];
    for pubkey in ["garbage", "", broken_pkcs1, truncated, EC_PUBLIC_KEY, RSA_PRIVATE_KEY] {
        let reply = env.api.post(TOKEN_DEVICES, &scene.bank, json!({"pubkey": pubkey, "refname": "bad"})).await;
        reply.assert_status(400);
        let message = assert_error_shape(&reply);
        assert!(
            message.to_ascii_lowercase().contains("key"),
            "the message must say the key is the problem: {}",
            reply.describe()
        );
    }

    assert_eq!(snapshot(&env, &scene).await, before, "failed requests must not change anything");
    assert_eq!(env.token_state(&scene.bank, &uuid_of(&open)).await, "OPEN");
}

/// Claim failures: 403 `{"error":…}` and the token stays as it was.
async fn claim_errors(backend: Backend, mode: ErrorMode) {
    let env = TestEnv::start_with(backend, mode.serve_args()).await;
    let scene = env.scene("bank@example.com").await;
    let token = env.issue(&scene.bank, &scene.phone, 5000).await;
    let radiocode = long_radiocode(&token, scene.phone.key);
    let before = snapshot(&env, &scene).await;

    let unknown_device = Uuid::new_v4().to_string();
    let reply = env.claim(&scene.cash, &unknown_device, &radiocode).await;
    mode.assert_claim_error(&reply, &format!("Cash device with UUID {unknown_device} not found."));

    env.customer("atm-network@example.com");
    let foreign_cash = env.access("atm-network@example.com", "cash-api");
    let foreign_atm = env.register_cash_device(&foreign_cash, "foreign-atm").await;
    let reply = env.claim(&scene.cash, &foreign_atm, &radiocode).await;
    mode.assert_claim_error(&reply, &format!("Cash device with UUID {foreign_atm} not found."));

    let reply = env.api.get(&format!("/dnapi/cash/v1/tokens/{radiocode}"), &scene.cash).await;
    mode.assert_claim_error(&reply, "Cash device with UUID undefined not found.");

    let unknown_token = Uuid::new_v4().to_string();
    let reply = env.claim(&scene.cash, &scene.atm, &format!("{unknown_token}a1b2c3d4e5f6")).await;
    mode.assert_claim_error(&reply, &format!("Token not found: {unknown_token}"));

    let reply = env.claim(&scene.cash, &scene.atm, "123456654321").await;
    mode.assert_claim_error(&reply, "Token not found: 123456");

    let not_a_uuid = "x".repeat(40);
    let reply = env.claim(&scene.cash, &scene.atm, &not_a_uuid).await;
    mode.assert_claim_error(&reply, &format!("Token not found: {}", &not_a_uuid[..36]));

    assert_eq!(snapshot(&env, &scene).await, before, "failed claims must not change anything");
    env.claim_ok(&scene.cash, &scene.atm, &token, &scene.phone).await;
    let reply = env.claim(&scene.cash, &scene.atm, &radiocode).await;
    mode.assert_claim_error(&reply, NOT_OPEN);
}

/// Confirm failures: ERR500 bodies, and the token keeps its state.
async fn confirm_errors(backend: Backend, mode: ErrorMode) {
    let env = TestEnv::start_with(backend, mode.serve_args()).await;
    let scene = env.scene("bank@example.com").await;
    let open = env.issue(&scene.bank, &scene.phone, 5000).await;
    let token = env.issue(&scene.bank, &scene.phone, 10000).await;
    let uuid = uuid_of(&token);
    let locked = env.claim_ok(&scene.cash, &scene.atm, &token, &scene.phone).await;
    let other_atm = env.register_cash_device(&scene.cash, "atm2").await;
    let before = snapshot(&env, &scene).await;
    let completed = json!({"state": "COMPLETED"});

    let reply = env.confirm(&scene.cash, &scene.atm, &uuid_of(&open), completed.clone()).await;
    mode.assert_business_error(&reply, "Sorry, token was locked by another device");
    let reply = env.confirm(&scene.cash, &other_atm, &uuid, completed.clone()).await;
    mode.assert_business_error(&reply, "Sorry, token was locked by another device");
    let unknown_device = Uuid::new_v4().to_string();
    let reply = env.confirm(&scene.cash, &unknown_device, &uuid, completed.clone()).await;
    mode.assert_business_error(&reply, &format!("Cash device with UUID {unknown_device} not found."));
    let reply = env.confirm(&scene.cash, &scene.atm, &Uuid::new_v4().to_string(), completed.clone()).await;
    mode.assert_business_error(&reply, "Token not found");
    for body in [json!({"state": "OPEN"}), json!({"state": "DELETED"}), json!({"lockrefname": "x"})] {
        let reply = env.confirm(&scene.cash, &scene.atm, &uuid, body).await;
        mode.assert_business_error(&reply, ONLY_FINAL_STATES);
    }
    let reply = env.confirm(&scene.cash, &scene.atm, &uuid, json!({"state": "COMPLETED", "amount": 10001})).await;
    mode.assert_business_error(&reply, "Illegal amount increase for dispense token.");

    assert_eq!(snapshot(&env, &scene).await, before, "failed confirms must not change anything");
    let view = env.token(&scene.bank, &uuid).await;
    assert_eq!(view["state"], "LOCKED");
    assert_eq!(view["amount"], 10000);
    assert_eq!(view["updated"], locked["updated"]);

    let reply =
        env.confirm(&scene.cash, &scene.atm, &uuid, json!({"state": "COMPLETED", "lockrefname": "first"})).await;
    assert_eq!(reply.ok()["state"], "COMPLETED");
    let after_confirm = env.token(&scene.bank, &uuid).await;
    for body in [json!({"state": "COMPLETED", "lockrefname": "second"}), json!({"state": "CANCELED"})] {
        let reply: Reply = env.confirm(&scene.cash, &scene.atm, &uuid, body).await;
        mode.assert_business_error(&reply, "Token not in LOCKED state.");
    }
    assert_eq!(env.token(&scene.bank, &uuid).await, after_confirm, "a second confirm changes nothing");
    assert_eq!(env.token_state(&scene.bank, &uuid_of(&open)).await, "OPEN");
}
