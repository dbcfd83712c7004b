//! Partial cash-outs (§8.2): with the confirming cash customer's PARTIAL_CASHOUTS on, a confirm
//! for less than the token's amount re-issues the rest under the same codes.

use serde_json::{json, Value};

use crate::flows::uuid_of;
use crate::harness::{Backend, TestEnv};
use crate::phone::short_radiocode;

pub async fn a_partial_cash_out_reissues_the_remainder_under_the_same_code(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let customer = env.customer("bank@example.com");
    env.set_param("bank@example.com", "USE_PLAIN_CODES", "true");
    env.set_param("bank@example.com", "PARTIAL_CASHOUTS", "true");
    let scene = env.scene_for(customer).await;
    let body = json!({"device_uuid": scene.phone.uuid, "amount": 10000, "symbol": "EUR", "refname": "r1",
                      "info": {"denomData": [{"d": 5000, "c": 2}]}});
    let token = env.issue_with(&scene.bank, body).await.ok().clone();
    let uuid = uuid_of(&token);
    let radiocode = short_radiocode(&token, scene.phone.key);

    env.claim(&scene.cash, &scene.atm, &radiocode).await.ok();
    let reply = env
        .confirm(
            &scene.cash,
            &scene.atm,
            &uuid,
            json!({"state": "COMPLETED", "amount": 6000, "processing_info": {"p": 1}}),
        )
        .await;
    let confirmed = reply.ok();
    assert_eq!(confirmed["uuid"], uuid.as_str(), "the reply shows the original token: {}", reply.describe());
    assert_eq!(confirmed["amount"], 6000);
    assert_eq!(confirmed["state"], "COMPLETED");

    let open = env.tokens(&scene.bank, "state=OPEN").await;
    assert_eq!(open.len(), 1, "one remainder token: {open:?}");
    let remainder = &open[0];
    assert_ne!(remainder["uuid"], uuid.as_str());
    assert_eq!(remainder["amount"], 4000);
    assert_eq!(remainder["plain_code"], token["plain_code"], "same plain code");
    assert_eq!(remainder["secure_code"], token["secure_code"], "same secure code");
    assert_eq!(remainder["info"], json!({"partial_from_uuid": uuid}));
    assert_eq!(remainder["refname"], "r1");
    // The original copies the row as read *before* the confirm, whose processing_info is unset.
    assert_eq!(remainder["processing_info"], Value::Null);
    assert_eq!(remainder["lockrefname"], Value::Null);
    assert_eq!(remainder["type"], "CASHOUT");
    assert_eq!(remainder["symbol"], "EUR");
    assert_eq!(remainder["device_uuid"], scene.phone.uuid.as_str());

    // The phone's code still works and now finds the remainder.
    let reply = env.claim(&scene.cash, &scene.atm, &radiocode).await;
    let locked = reply.ok();
    assert_eq!(locked["uuid"], remainder["uuid"], "the same short code claims the remainder");
    assert_eq!(locked["amount"], 4000);

    // A CANCELED confirm of nothing re-issues the whole remainder again.
    let remainder_uuid = uuid_of(remainder);
    let reply = env.confirm(&scene.cash, &scene.atm, &remainder_uuid, json!({"state": "CANCELED", "amount": 0})).await;
    assert_eq!(reply.ok()["state"], "CANCELED");
    let open = env.tokens(&scene.bank, "state=OPEN").await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["amount"], 4000);
    assert_eq!(open[0]["info"], json!({"partial_from_uuid": remainder_uuid}));

    // A full confirm leaves nothing behind.
    let last = uuid_of(&open[0]);
    env.claim(&scene.cash, &scene.atm, &radiocode).await.ok();
    let reply = env.confirm(&scene.cash, &scene.atm, &last, json!({"state": "COMPLETED"})).await;
    assert_eq!(reply.ok()["amount"], 4000);
    assert!(env.tokens(&scene.bank, "state=OPEN").await.is_empty());
    assert_eq!(env.tokens(&scene.bank, "").await.len(), 3);
}

/// The parameter that counts is the confirming cash customer's, not the token owner's.
pub async fn without_partial_cash_outs_a_smaller_confirm_reissues_nothing(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let customer = env.customer("bank@example.com");
    env.set_param("bank@example.com", "PARTIAL_CASHOUTS", "true");
    let scene = env.scene_for(customer).await;
    env.customer("atm-network@example.com");
    let network = env.access("atm-network@example.com", "cash-api");
    let network_atm = env.register_cash_device(&network, "network-atm").await;

    let token = env.issue(&scene.bank, &scene.phone, 10000).await;
    env.claim_ok(&network, &network_atm, &token, &scene.phone).await;
    let reply =
        env.confirm(&network, &network_atm, &uuid_of(&token), json!({"state": "COMPLETED", "amount": 6000})).await;
    assert_eq!(reply.ok()["amount"], 6000);
    assert!(env.tokens(&scene.bank, "state=OPEN").await.is_empty(), "no remainder without the cash side's parameter");
    assert_eq!(env.tokens(&scene.bank, "").await.len(), 1);
}
