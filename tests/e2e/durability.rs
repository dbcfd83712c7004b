//! Durable before reply: a SIGKILL right after the last acknowledgement loses nothing.

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::flows::uuid_of;
use crate::harness::{Backend, TestEnv};
use crate::phone::{corrupted, hex};

/// Tokens claimed and confirmed before the kill.
const CONFIRMED_TOKENS: usize = 20;
const FINAL_STATES: [&str; 5] = ["COMPLETED", "CANCELED", "FAILED", "REJECTED", "RETRACTED"];

pub async fn every_acknowledged_confirm_survives_a_server_kill(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let scene = env.scene("bank@example.com").await;

    let mut confirmed = Vec::new();
    for index in 0..CONFIRMED_TOKENS {
        let amount = 1000 + i64::try_from(index).expect("small index") * 10;
        let token = env.issue(&scene.bank, &scene.phone, amount).await;
        env.claim_ok(&scene.cash, &scene.atm, &token, &scene.phone).await;
        confirmed.push((uuid_of(&token), FINAL_STATES[index % FINAL_STATES.len()], amount, index));
    }
    let locked_token = env.issue(&scene.bank, &scene.phone, 7000).await;
    let locked = env.claim_ok(&scene.cash, &scene.atm, &locked_token, &scene.phone).await;
    let rejected_token = env.issue(&scene.bank, &scene.phone, 8000).await;
    let code = scene.phone.key.decrypt(rejected_token["secure_code"].as_str().expect("secure_code"));
    let reply =
        env.claim(&scene.cash, &scene.atm, &format!("{}{}", uuid_of(&rejected_token), hex(&corrupted(&code)))).await;
    reply.assert_status(403);
    let open_token = env.issue(&scene.bank, &scene.phone, 9000).await;

    // All confirms at once, then SIGKILL as soon as the last acknowledgement is in.
    let confirms = confirmed.iter().map(|(uuid, state, amount, index)| {
        let body = json!({"state": state, "amount": amount - 1, "lockrefname": format!("ref-{index}"),
                          "processing_info": {"index": index}});
        env.confirm(&scene.cash, &scene.atm, uuid, body)
    });
    let replies = join_all(confirms).await;
    for (reply, (_, state, _, _)) in replies.iter().zip(&confirmed) {
        assert_eq!(reply.ok()["state"], *state, "confirm: {}", reply.describe());
    }
    env.kill_and_restart().await;

    for (uuid, state, amount, index) in &confirmed {
        let view = env.token(&scene.bank, uuid).await;
        assert_eq!(view["state"], *state, "confirmed state lost in the kill: {view}");
        assert_eq!(view["amount"], amount - 1, "confirmed amount lost: {view}");
        assert_eq!(view["lockrefname"], format!("ref-{index}"), "lockrefname lost: {view}");
        assert_eq!(view["processing_info"], json!({"index": index}), "processing_info lost: {view}");
        assert_eq!(view["secure_code"], "", "confirmed tokens keep no code: {view}");
    }
    let view = env.token(&scene.bank, &uuid_of(&locked_token)).await;
    assert_eq!(view["state"], "LOCKED", "the lock survives the kill: {view}");
    assert_eq!(view["updated"], locked["updated"]);
    assert_eq!(view["secure_code"], locked_token["secure_code"]);
    assert_eq!(env.token_state(&scene.bank, &uuid_of(&rejected_token)).await, "REJECTED");
    let view = env.token(&scene.bank, &uuid_of(&open_token)).await;
    assert_eq!(view["state"], "OPEN");
    assert_eq!(view["secure_code"], open_token["secure_code"]);

    // The restarted server still knows the codes and the locking device.
    let relocked = env.claim_ok(&scene.cash, &scene.atm, &open_token, &scene.phone).await;
    assert_eq!(relocked["uuid"], open_token["uuid"]);
    let reply = env.confirm(&scene.cash, &scene.atm, &uuid_of(&locked_token), json!({"state": "COMPLETED"})).await;
    assert_eq!(reply.ok()["state"], "COMPLETED");
    assert_eq!(reply.json["processing_info"], Value::Null);
}
