//! The main flow, from bank to phone to ATM, with every response checked field by field.

use serde_json::{json, Value};

use crate::flows::{claim_path, confirm_path, token_path, uuid_of, CASH_DEVICES, TOKENS, TOKEN_DEVICES};
use crate::harness::{Backend, TestEnv};
use crate::phone::{
    long_radiocode, PhoneKey, PHONE_A_PKCS1, PHONE_A_SPKI, PHONE_B_PKCS1, PHONE_B_PKCS1_WRAPPED_76, PHONE_C_2048,
    PHONE_C_2048_SPKI,
};
use crate::wire::{
    assert_keys, assert_recent_timestamp, assert_v4_uuid, DEVICE_KEYS, V_FULL_KEYS, V_LOCKED_KEYS, V_ROW_KEYS,
};

pub async fn a_full_cash_out_takes_a_token_from_open_to_completed(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let customer = env.customer("bank@example.com");
    let bank = env.access("bank@example.com", "token-api");
    let cash = env.access("bank@example.com", "cash-api");

    // The bank registers the customer's phone.
    let reply = env
        .api
        .post(TOKEN_DEVICES, &bank, json!({"pubkey": PHONE_C_2048.public_pem, "refname": "phone1", "info": {"k": "v"}}))
        .await;
    let device = reply.ok().clone();
    assert_keys(&reply, &DEVICE_KEYS);
    assert!(device["id"].is_i64(), "device id must be a number: {device}");
    assert_eq!(device["customer_id"], customer["id"], "device belongs to the caller: {device}");
    let phone = assert_v4_uuid(&device["uuid"], "device uuid");
    assert_recent_timestamp(&device["created"], "device created");
    assert_eq!(device["type"], "MOBILE");
    assert_eq!(device["status"], 0);
    assert_eq!(device["pubkey"], PHONE_C_2048.public_pem);
    assert_eq!(device["algorithm"], Value::Null);
    assert_eq!(device["lat"], Value::Null);
    assert_eq!(device["lon"], Value::Null);
    assert_eq!(device["refname"], "phone1");
    let info_text = device["info"].as_str().unwrap_or_else(|| panic!("device info must be JSON text: {device}"));
    assert_eq!(serde_json::from_str::<Value>(info_text).ok(), Some(json!({"k": "v"})), "device info: {device}");

    // The bank issues a token to that phone.
    let reply = env
        .api
        .post(
            TOKENS,
            &bank,
            json!({"device_uuid": phone, "amount": 10000, "symbol": "EUR", "refname": "r1",
                   "info": {"denomData": [{"d": 5000, "c": 2}]}}),
        )
        .await;
    let token = reply.ok().clone();
    assert_keys(&reply, &V_ROW_KEYS);
    let uuid = assert_v4_uuid(&token["uuid"], "token uuid");
    let created = assert_recent_timestamp(&token["created"], "token created");
    assert_eq!(token["updated"], Value::Null);
    assert_eq!(token["type"], "CASHOUT");
    assert_eq!(token["code_type"], 0);
    assert_eq!(token["plain_code"], Value::Null);
    assert_eq!(token["amount"], 10000);
    assert_eq!(token["symbol"], "EUR");
    assert_eq!(token["state"], "OPEN");
    assert_eq!(token["clearstate"], 0);
    assert_eq!(token["expires"], Value::Null);
    assert_eq!(token["refname"], "r1");
    assert_eq!(token["lockrefname"], Value::Null);
    assert_eq!(token["info"], json!({"denomData": [{"d": 5000, "c": 2}]}));
    assert_eq!(token["processing_info"], Value::Null);
    let secure_code = token["secure_code"].as_str().expect("secure_code is a string");
    assert_eq!(secure_code.len(), 344, "RSA-2048 ciphertext is 344 Base64 characters");
    assert_eq!(PHONE_C_2048.decrypt(secure_code).len(), 6, "the secure code is 6 bytes");

    // The owner sees it OPEN, with the device uuid.
    let reply = env.api.get(&token_path(&uuid), &bank).await;
    let view = reply.ok().clone();
    assert_keys(&reply, &V_FULL_KEYS);
    assert_eq!(view["state"], "OPEN");
    assert_eq!(view["secure_code"], secure_code);
    assert_eq!(view["device_uuid"], phone.as_str());

    // An ATM of the same bank.
    let reply = env.api.post(CASH_DEVICES, &cash, json!({"refname": "atm1"})).await;
    let atm_row = reply.ok().clone();
    assert_keys(&reply, &DEVICE_KEYS);
    assert_eq!(atm_row["type"], "ATM");
    assert_eq!(atm_row["refname"], "atm1");
    assert_eq!(atm_row["customer_id"], customer["id"]);
    let atm = assert_v4_uuid(&atm_row["uuid"], "atm uuid");

    // The phone shows the QR code; the ATM claims the token with it.
    let radiocode = long_radiocode(&token, &PHONE_C_2048);
    let reply = env.api.get(&claim_path(&radiocode, &atm), &cash).await;
    let locked = reply.ok().clone();
    assert_keys(&reply, &V_LOCKED_KEYS);
    assert_eq!(locked["uuid"], uuid.as_str());
    assert_eq!(locked["state"], "LOCKED");
    let updated = assert_recent_timestamp(&locked["updated"], "updated after lock");
    assert!(updated >= created, "updated {updated} before created {created}");
    assert_eq!(locked["created"], token["created"]);
    assert_eq!(locked["amount"], 10000);
    assert_eq!(locked["symbol"], "EUR");
    assert_eq!(locked["refname"], "r1");
    assert_eq!(locked["lockrefname"], Value::Null);
    assert_eq!(locked["info"], token["info"]);

    // The ATM dispenses and confirms.
    let reply = env
        .api
        .put(
            &confirm_path(&uuid, &atm),
            &cash,
            json!({"state": "COMPLETED", "lockrefname": "atm-ref", "processing_info": {"x": 1}}),
        )
        .await;
    let confirmed = reply.ok().clone();
    assert_keys(&reply, &V_ROW_KEYS);
    assert_eq!(confirmed["uuid"], uuid.as_str());
    assert_eq!(confirmed["state"], "COMPLETED");
    assert_eq!(confirmed["secure_code"], "");
    assert_eq!(confirmed["plain_code"], Value::Null);
    assert_eq!(confirmed["amount"], 10000);
    assert_eq!(confirmed["lockrefname"], "atm-ref");
    assert_eq!(confirmed["processing_info"], json!({"x": 1}));
    assert_eq!(confirmed["info"], token["info"]);
    assert_recent_timestamp(&confirmed["updated"], "updated after confirm");

    // The bank sees the outcome.
    let reply = env.api.get(&token_path(&uuid), &bank).await;
    let view = reply.ok().clone();
    assert_keys(&reply, &V_FULL_KEYS);
    assert_eq!(view["state"], "COMPLETED");
    assert_eq!(view["device_uuid"], phone.as_str());
    assert_eq!(view["secure_code"], "");
    assert_eq!(view["lockrefname"], "atm-ref");
    assert_eq!(view["processing_info"], json!({"x": 1}));
    assert_eq!(view["amount"], 10000);

    let reply = env.api.get(&format!("{TOKENS}?state=COMPLETED"), &bank).await;
    let completed = reply.list();
    assert_eq!(completed.len(), 1, "one completed token: {}", reply.describe());
    assert_eq!(completed[0], view);
    assert_eq!(reply.element_keys(), vec![V_FULL_KEYS.to_vec()]);
    assert!(env.tokens(&bank, "state=OPEN").await.is_empty(), "no OPEN token is left");

    // The Token API lists all of the bank's devices, the ATM included.
    let mut listed: Vec<String> = env.devices(&bank).await.iter().map(uuid_of).collect();
    listed.sort();
    let mut expected = vec![phone, atm];
    expected.sort();
    assert_eq!(listed, expected);
}

/// Every accepted key format yields ciphertext the phone can decrypt and a code the ATM accepts.
pub async fn phones_with_pkcs1_spki_and_rewrapped_keys_all_receive_working_codes(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let scene = env.scene("bank@example.com").await;
    let keys: [&'static PhoneKey; 6] =
        [&PHONE_A_PKCS1, &PHONE_A_SPKI, &PHONE_B_PKCS1, &PHONE_B_PKCS1_WRAPPED_76, &PHONE_C_2048, &PHONE_C_2048_SPKI];
    for key in keys {
        let phone = env.register_phone(&scene.bank, key, "phone").await;
        let token = env.issue(&scene.bank, &phone, 2000).await;
        let secure_code = token["secure_code"].as_str().expect("secure_code");
        assert_eq!(key.decrypt(secure_code).len(), 6, "{}: 6-byte code", key.name);
        let locked = env.claim_ok(&scene.cash, &scene.atm, &token, &phone).await;
        assert_eq!(locked["uuid"], token["uuid"], "{}", key.name);
    }
}

/// Registration keeps type, position, refname and info as sent; both APIs read the same row.
pub async fn devices_keep_type_position_and_info_as_registered(backend: Backend) {
    let env = TestEnv::start(backend).await;
    env.customer("bank@example.com");
    let bank = env.access("bank@example.com", "token-api");
    let cash = env.access("bank@example.com", "cash-api");

    let body = json!({"pubkey": PHONE_A_PKCS1.public_pem, "type": "OTHER", "lat": 50.043858, "lon": 8.679574,
                      "refname": "dev1", "info": {"anyKey": "anyValue"}});
    let reply = env.api.post(TOKEN_DEVICES, &bank, body).await;
    let device = reply.ok().clone();
    assert_keys(&reply, &DEVICE_KEYS);
    assert_eq!(device["type"], "OTHER");
    assert_eq!(device["lat"].as_f64(), Some(50.043858), "lat is a number: {device}");
    assert_eq!(device["lon"].as_f64(), Some(8.679574), "lon is a number: {device}");
    assert_eq!(device["refname"], "dev1");
    let info = device["info"].as_str().unwrap_or_else(|| panic!("info is JSON text: {device}"));
    assert_eq!(serde_json::from_str::<Value>(info).ok(), Some(json!({"anyKey": "anyValue"})));
    let reply = env.api.get(&format!("{TOKEN_DEVICES}/{}", uuid_of(&device)), &bank).await;
    assert_eq!(reply.ok(), &device, "GET /devices/:uuid returns the registered row");
    assert_keys(&reply, &DEVICE_KEYS);

    let reply = env.api.post(CASH_DEVICES, &cash, json!({"type": "CASH_REGISTER", "refname": "till-3"})).await;
    let till = reply.ok().clone();
    assert_eq!(till["type"], "CASH_REGISTER");
    assert_eq!(till["pubkey"], Value::Null);
    assert_eq!(till["info"], Value::Null);

    let before = env.devices(&bank).await;
    assert_eq!(before.len(), 2);
    let reply = env.api.post(CASH_DEVICES, &cash, json!({"type": "TOASTER", "refname": "x"})).await;
    reply.assert_status(500);
    crate::wire::assert_error_shape(&reply);
    assert_eq!(env.devices(&bank).await, before, "a rejected registration stores nothing");
}

/// Only CASHOUT tokens refuse a larger confirmed amount (§7.1 step 6).
pub async fn a_cash_in_token_may_be_confirmed_with_a_larger_amount(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let scene = env.scene("bank@example.com").await;
    let body = json!({"device_uuid": scene.phone.uuid, "amount": 1000, "symbol": "EUR", "type": "CASHIN"});
    let token = env.issue_with(&scene.bank, body).await.ok().clone();
    assert_eq!(token["type"], "CASHIN");
    env.claim_ok(&scene.cash, &scene.atm, &token, &scene.phone).await;
    let reply =
        env.confirm(&scene.cash, &scene.atm, &uuid_of(&token), json!({"state": "COMPLETED", "amount": 2500})).await;
    let confirmed = reply.ok();
    assert_eq!(confirmed["amount"], 2500);
    assert_eq!(confirmed["type"], "CASHIN");
    assert_eq!(env.token(&scene.bank, &uuid_of(&token)).await["amount"], 2500);
}
