//! Token API ownership: delete, update, listing, and what other customers can and cannot do.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::flows::{token_path, uuid_of, TOKENS, TOKEN_DEVICES};
use crate::harness::{Backend, TestEnv};
use crate::phone::{long_radiocode, PHONE_A_PKCS1};
use crate::wire::{assert_keys, assert_not_found, V_FULL_KEYS, V_ROW_KEYS};

fn delete_path(token: &str, device: &str) -> String {
    format!("{}?device_uuid={device}", token_path(token))
}

pub async fn the_owner_deletes_an_open_token_but_not_a_claimed_one(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let scene = env.scene("bank@example.com").await;
    let second_phone = env.register_phone(&scene.bank, &PHONE_A_PKCS1, "phone2").await;
    let open = env.issue(&scene.bank, &scene.phone, 1000).await;
    let uuid = uuid_of(&open);

    // Only with the token's own device.
    assert_not_found(&env.api.delete(&delete_path(&uuid, &second_phone.uuid), &scene.bank).await);
    assert_not_found(&env.api.delete(&token_path(&uuid), &scene.bank).await);
    assert_eq!(env.token_state(&scene.bank, &uuid).await, "OPEN");

    let reply = env.api.delete(&delete_path(&uuid, &scene.phone.uuid), &scene.bank).await;
    let deleted = reply.ok().clone();
    assert_keys(&reply, &V_ROW_KEYS);
    assert_eq!(deleted["uuid"], uuid.as_str());
    assert_eq!(deleted["state"], "DELETED");
    assert_eq!(deleted["secure_code"], "");
    assert_eq!(deleted["plain_code"], Value::Null);
    assert_eq!(deleted["amount"], 1000);
    let view = env.token(&scene.bank, &uuid).await;
    assert_eq!(view["state"], "DELETED");
    assert_eq!(view["secure_code"], "");

    // Deleted is final: no second delete, no claim.
    assert_not_found(&env.api.delete(&delete_path(&uuid, &scene.phone.uuid), &scene.bank).await);
    let reply = env.claim(&scene.cash, &scene.atm, &long_radiocode(&open, scene.phone.key)).await;
    reply.assert_status(403);

    // A claimed token can no longer be withdrawn.
    let claimed = env.issue(&scene.bank, &scene.phone, 2000).await;
    env.claim_ok(&scene.cash, &scene.atm, &claimed, &scene.phone).await;
    assert_not_found(&env.api.delete(&delete_path(&uuid_of(&claimed), &scene.phone.uuid), &scene.bank).await);
    assert_eq!(env.token_state(&scene.bank, &uuid_of(&claimed)).await, "LOCKED");
}

pub async fn the_owner_updates_clearstate_and_info_in_any_state(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let scene = env.scene("bank@example.com").await;
    let token = env.issue(&scene.bank, &scene.phone, 1000).await;
    let uuid = uuid_of(&token);

    let reply = env.api.put(&token_path(&uuid), &scene.bank, json!({"clearstate": 2, "info": {"a": 1}})).await;
    let updated = reply.ok().clone();
    assert_keys(&reply, &V_ROW_KEYS);
    assert_eq!(updated["clearstate"], 2);
    assert_eq!(updated["info"], json!({"a": 1}));
    assert_eq!(updated["state"], "OPEN");
    assert_eq!(updated["updated"], Value::Null, "an owner update does not touch `updated`");
    assert_eq!(updated["secure_code"], token["secure_code"]);
    let view = env.token(&scene.bank, &uuid).await;
    assert_eq!(view["clearstate"], 2);
    assert_eq!(view["info"], json!({"a": 1}));

    // The filter sees the new clearstate; the token is still claimable with its code.
    let listed = env.tokens(&scene.bank, "clearstate=2").await;
    assert_eq!(listed.iter().map(uuid_of).collect::<Vec<_>>(), vec![uuid.clone()]);
    assert!(env.tokens(&scene.bank, "clearstate=0").await.is_empty());
    env.claim_ok(&scene.cash, &scene.atm, &token, &scene.phone).await;
    let reply = env.confirm(&scene.cash, &scene.atm, &uuid, json!({"state": "COMPLETED"})).await;
    reply.assert_status(200);

    // Bookkeeping continues after the cash-out; `info` is replaced as a whole.
    let reply = env.api.put(&token_path(&uuid), &scene.bank, json!({"clearstate": 3, "info": {"b": 2}})).await;
    let updated = reply.ok();
    assert_eq!(updated["state"], "COMPLETED");
    assert_eq!(updated["clearstate"], 3);
    assert_eq!(updated["info"], json!({"b": 2}));
    let reply = env.api.put(&token_path(&uuid), &scene.bank, json!({"clearstate": 4})).await;
    assert_eq!(reply.ok()["info"], json!({"b": 2}), "a body without info keeps it");
    assert_eq!(reply.json["clearstate"], 4);
}

pub async fn other_customers_see_neither_devices_nor_tokens(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let scene = env.scene("bank@example.com").await;
    let token = env.issue(&scene.bank, &scene.phone, 1000).await;
    let uuid = uuid_of(&token);
    env.customer("other@example.com");
    let other = env.access("other@example.com", "token-api");
    let other_phone = env.register_phone(&other, &PHONE_A_PKCS1, "other-phone").await;

    assert_not_found(&env.api.get(&format!("{TOKEN_DEVICES}/{}", scene.phone.uuid), &other).await);
    let devices: Vec<String> = env.devices(&other).await.iter().map(uuid_of).collect();
    assert_eq!(devices, vec![other_phone.uuid.clone()], "only its own device");
    assert_not_found(&env.api.get(&token_path(&uuid), &other).await);
    assert!(env.tokens(&other, "").await.is_empty());
    assert!(env.tokens(&other, &format!("uuid={uuid}")).await.is_empty());
    assert!(env.tokens(&other, &format!("device_uuid={}", scene.phone.uuid)).await.is_empty());
    assert!(env.tokens(&other, "state=OPEN").await.is_empty());

    assert_not_found(&env.api.delete(&delete_path(&uuid, &scene.phone.uuid), &other).await);
    assert_not_found(&env.api.put(&token_path(&uuid), &other, json!({"clearstate": 9})).await);
    let reply = env.issue_with(&other, json!({"device_uuid": scene.phone.uuid, "amount": 1, "symbol": "EUR"})).await;
    reply.assert_status(500);
    assert_eq!(
        reply.json,
        json!({"error": {}, "message": format!("Sorry, device with UUID {} not found.", scene.phone.uuid)})
    );

    let view = env.token(&scene.bank, &uuid).await;
    assert_eq!(view["state"], "OPEN");
    assert_eq!(view["clearstate"], 0);
    assert_eq!(env.tokens(&scene.bank, "").await.len(), 1);
    // The owner still sees its device and the other's token list stayed empty.
    env.api.get(&format!("{TOKEN_DEVICES}/{}", scene.phone.uuid), &scene.bank).await.assert_status(200);
    assert!(env.tokens(&other, "").await.is_empty());
}

pub async fn a_foreign_cash_device_may_claim_but_only_the_locking_device_confirms(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let scene = env.scene("bank@example.com").await;
    env.customer("atm-network@example.com");
    let network = env.access("atm-network@example.com", "cash-api");
    let network_atm = env.register_cash_device(&network, "network-atm").await;
    let token = env.issue(&scene.bank, &scene.phone, 3000).await;
    let uuid = uuid_of(&token);

    // Cross-customer claims are allowed.
    let locked = env.claim_ok(&network, &network_atm, &token, &scene.phone).await;
    assert_eq!(locked["uuid"], uuid.as_str());

    // The bank's own ATM did not lock it, so it cannot confirm it.
    let reply = env.confirm(&scene.cash, &scene.atm, &uuid, json!({"state": "COMPLETED"})).await;
    reply.assert_status(500);
    assert_eq!(reply.json, json!({"error": {}, "message": "Sorry, token was locked by another device"}));
    // Nor can the bank's credentials confirm with the network's device.
    let reply = env.confirm(&scene.cash, &network_atm, &uuid, json!({"state": "COMPLETED"})).await;
    reply.assert_status(500);
    assert_eq!(reply.json, json!({"error": {}, "message": format!("Cash device with UUID {network_atm} not found.")}));
    assert_eq!(env.token_state(&scene.bank, &uuid).await, "LOCKED");

    let reply = env.confirm(&network, &network_atm, &uuid, json!({"state": "COMPLETED", "lockrefname": "net-1"})).await;
    assert_eq!(reply.ok()["state"], "COMPLETED");
    let view = env.token(&scene.bank, &uuid).await;
    assert_eq!(view["state"], "COMPLETED");
    assert_eq!(view["lockrefname"], "net-1");
    // The network sees nothing of the bank's tokens through its own Token API key.
    let network_tokens = env.access("atm-network@example.com", "token-api");
    assert_not_found(&env.api.get(&token_path(&uuid), &network_tokens).await);
    assert!(env.tokens(&network_tokens, "").await.is_empty());
}

pub async fn listing_by_device_shows_only_its_open_tokens(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let scene = env.scene("bank@example.com").await;
    let second_phone = env.register_phone(&scene.bank, &PHONE_A_PKCS1, "phone2").await;
    let open = env.issue(&scene.bank, &scene.phone, 1000).await;
    let claimed = env.issue(&scene.bank, &scene.phone, 2000).await;
    env.claim_ok(&scene.cash, &scene.atm, &claimed, &scene.phone).await;
    let elsewhere = env.issue(&scene.bank, &second_phone, 3000).await;

    let reply = env.api.get(&format!("{TOKENS}?device_uuid={}", scene.phone.uuid), &scene.bank).await;
    let listed = reply.list();
    assert_eq!(listed.iter().map(uuid_of).collect::<Vec<_>>(), vec![uuid_of(&open)], "{}", reply.describe());
    assert_eq!(reply.element_keys(), vec![V_FULL_KEYS.to_vec()]);
    assert_eq!(listed[0]["device_uuid"], scene.phone.uuid.as_str());
    // Other filters are ignored together with device_uuid.
    let listed = env.tokens(&scene.bank, &format!("device_uuid={}&state=LOCKED", scene.phone.uuid)).await;
    assert_eq!(listed.iter().map(uuid_of).collect::<Vec<_>>(), vec![uuid_of(&open)]);

    let mut all: Vec<String> = env.tokens(&scene.bank, "").await.iter().map(uuid_of).collect();
    all.sort();
    let mut expected = vec![uuid_of(&open), uuid_of(&claimed), uuid_of(&elsewhere)];
    expected.sort();
    assert_eq!(all, expected);
    let locked: Vec<String> = env.tokens(&scene.bank, "state=LOCKED").await.iter().map(uuid_of).collect();
    assert_eq!(locked, vec![uuid_of(&claimed)]);
    // The explicit column forms of the original's query builder.
    let locked: Vec<String> = env.tokens(&scene.bank, "t.state=LOCKED").await.iter().map(uuid_of).collect();
    assert_eq!(locked, vec![uuid_of(&claimed)], "t.state=");
    let query = format!("d.uuid={}", second_phone.uuid);
    let on_second: Vec<String> = env.tokens(&scene.bank, &query).await.iter().map(uuid_of).collect();
    assert_eq!(on_second, vec![uuid_of(&elsewhere)], "d.uuid=");
    let by_uuid: Vec<String> =
        env.tokens(&scene.bank, &format!("uuid={}", uuid_of(&elsewhere))).await.iter().map(uuid_of).collect();
    assert_eq!(by_uuid, vec![uuid_of(&elsewhere)]);
    assert!(env.tokens(&scene.bank, &format!("uuid={}", Uuid::new_v4())).await.is_empty());
    let unknown_device = Uuid::new_v4();
    assert!(env.tokens(&scene.bank, &format!("device_uuid={unknown_device}")).await.is_empty());
}
