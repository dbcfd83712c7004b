//! Active expiry: an OPEN token past `expires` becomes EXPIRED at about that time, without any
//! claim touching it, and the change is an event like any other.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::flows::uuid_of;
use crate::harness::{Backend, TestEnv};
use crate::live_feeds::{FeedClient, Received};
use crate::wire::{iso_millis, now_millis};

/// The token's lifetime, and how long after issue it must show EXPIRED at the latest
/// (lifetime + one sweep interval + slack for a loaded machine).
const LIFETIME_MILLIS: i64 = 1_000;
const EXPIRED_WITHIN: Duration = Duration::from_millis(2_500);

pub async fn an_open_token_expires_on_time_without_a_claim_and_the_feed_says_so(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let scene = env.scene("bank@example.com").await;
    let mut feed = FeedClient::connect(&env, &format!("/dnapi/tokenws/v1/events/{}", scene.bank.apikey)).await;

    let issued_at = Instant::now();
    let expires = now_millis() + LIFETIME_MILLIS;
    let token = env
        .issue_with(
            &scene.bank,
            json!({"device_uuid": scene.phone.uuid, "amount": 1000, "symbol": "EUR", "expires": expires}),
        )
        .await
        .ok()
        .clone();
    let uuid = uuid_of(&token);
    let later = env
        .issue_with(&scene.bank, json!({"device_uuid": scene.phone.uuid, "amount": 2000, "symbol": "EUR", "expires": now_millis() + 3_600_000}))
        .await
        .ok()
        .clone();

    let created = feed.event().await;
    assert_eq!((created["event"].as_str(), created["uuid"].as_str()), (Some("created"), Some(uuid.as_str())));
    assert_eq!(feed.event().await["event"], "created");
    let expired = feed.event().await;
    let elapsed = issued_at.elapsed();
    assert!(elapsed <= EXPIRED_WITHIN, "expired {elapsed:?} after issue");
    assert_eq!(expired["uuid"], uuid.as_str(), "{expired}");
    assert_eq!(expired["event"], "expired");
    assert_eq!(expired["from"], "OPEN");
    assert_eq!(expired["to"], "EXPIRED");
    assert_eq!(expired["token"]["state"], "EXPIRED");
    assert_eq!(expired["token"]["expires"], iso_millis(expires));
    assert!(expired["seq"].as_i64() > created["seq"].as_i64());
    let at = crate::wire::parse_iso_millis(expired["at"].as_str().expect("at")).expect("TS");
    assert!(at >= expires, "expired at {at}, due at {expires}");

    // No claim was needed, and the codes are gone.
    let view = env.token(&scene.bank, &uuid).await;
    assert_eq!(view["state"], "EXPIRED", "{view}");
    assert_eq!(view["secure_code"], "");
    assert_eq!(view["plain_code"], Value::Null);
    // The token that is not due yet stays OPEN.
    assert_eq!(env.token_state(&scene.bank, &uuid_of(&later)).await, "OPEN");
    match feed.receive(Duration::from_millis(1_500)).await {
        None => {}
        Some(Received::Text(text)) if text.contains("heartbeat") => {}
        other => panic!("no further event, got {other:?}"),
    }
}
