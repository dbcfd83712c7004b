//! Expiry: a token past its `expires` can no longer be claimed and shows EXPIRED.

use std::time::Duration;

use serde_json::{json, Value};

use crate::flows::uuid_of;
use crate::harness::{Backend, TestEnv};
use crate::phone::long_radiocode;
use crate::wire::{assert_claim_error_body, iso_millis, now_millis, NOT_OPEN};

/// Lifetime of the short-lived token, and how long the test waits past it.
const LIFETIME_MILLIS: i64 = 1500;
const WAIT: Duration = Duration::from_millis(2000);

pub async fn an_expired_token_cannot_be_claimed(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let scene = env.scene("bank@example.com").await;
    let expires = now_millis() + LIFETIME_MILLIS;
    let reply = env
        .issue_with(
            &scene.bank,
            json!({"device_uuid": scene.phone.uuid, "amount": 1000, "symbol": "EUR", "expires": expires}),
        )
        .await;
    let short_lived = reply.ok().clone();
    assert_eq!(short_lived["expires"], iso_millis(expires), "expires is echoed as a timestamp: {}", reply.describe());
    let later = now_millis() + 3_600_000;
    let reply = env
        .issue_with(
            &scene.bank,
            json!({"device_uuid": scene.phone.uuid, "amount": 2000, "symbol": "EUR", "expires": later}),
        )
        .await;
    let long_lived = reply.ok().clone();

    tokio::time::sleep(WAIT).await;

    let reply = env.claim(&scene.cash, &scene.atm, &long_radiocode(&short_lived, scene.phone.key)).await;
    reply.assert_status(403);
    assert_claim_error_body(&reply, NOT_OPEN);
    let view = env.token(&scene.bank, &uuid_of(&short_lived)).await;
    assert_eq!(view["state"], "EXPIRED", "{view}");
    assert_eq!(view["secure_code"], "", "an expired token keeps no code: {view}");
    assert_eq!(view["plain_code"], Value::Null);
    assert_eq!(view["expires"], iso_millis(expires));

    // A token that has not expired yet is unaffected.
    let locked = env.claim_ok(&scene.cash, &scene.atm, &long_lived, &scene.phone).await;
    assert_eq!(locked["expires"], iso_millis(later));
    assert_eq!(env.token_state(&scene.bank, &uuid_of(&short_lived)).await, "EXPIRED");
}
