//! A database that stops answering (every process of its cluster frozen with SIGSTOP) must not
//! hold requests, and must never apply later what was answered as an error: `/health` answers
//! 503 within a second, requests answer 503 (not done, and never done later) or 504 (outcome
//! unknown) by their deadline, and once the database answers again every 503 is still undone
//! and a create retried with its `Idempotency-Key` yields exactly one token.
//!
//! The frozen database is a cluster of the test's own (`PrivateCluster`): the shared server is
//! never stopped.

use std::time::{Duration, Instant};

use awc::http::Method;
use serde_json::json;

use crate::api::{Body, Reply};
use crate::flows::{uuid_of, Scene, TOKENS};
use crate::harness::{PrivateCluster, TestEnv};
use crate::phone::long_radiocode;

/// How long the database stays frozen.
const FROZEN: Duration = Duration::from_secs(14);
/// A request's own deadline (`send_timeout_ms`, 5 s) plus the actor's grace and some slack.
const ANSWER_DEADLINE: Duration = Duration::from_secs(9);

/// A token create with an idempotency key (used as the refname too).
async fn keyed(env: &TestEnv, scene: &Scene, key: &str) -> Reply {
    let headers = [
        ("DN-API-KEY", scene.bank.apikey.as_str()),
        ("DN-API-SECRET", scene.bank.apisecret.as_str()),
        ("Idempotency-Key", key),
    ];
    let body = json!({"device_uuid": scene.phone.uuid, "amount": 5, "symbol": "EUR", "refname": key});
    env.api.request_with_headers(Method::POST, TOKENS, &headers, Body::Json(body)).await
}

/// Send after `delay_ms`; the answer with the time it took.
async fn timed(delay_ms: u64, request: impl std::future::Future<Output = Reply>) -> (Duration, Reply) {
    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    let started = Instant::now();
    let reply = request.await;
    (started.elapsed(), reply)
}

pub async fn a_hung_database_never_applies_a_request_answered_503() {
    let cluster = PrivateCluster::start();
    let env = TestEnv::start_on_database(&cluster.url, &[]).await;
    let scene = env.scene("bank@hung.test").await;
    let tokens: Vec<_> =
        futures_util::future::join_all((0..3).map(|n| env.issue(&scene.bank, &scene.phone, 100 + n))).await;
    let locked = env.issue(&scene.bank, &scene.phone, 900).await;
    env.claim_ok(&scene.cash, &scene.atm, &locked, &scene.phone).await;

    cluster.pause();
    let frozen_at = Instant::now();
    let health_started = Instant::now();
    let health = env.api.get_anonymous("/health").await;
    health.assert_status(503);
    assert!(health_started.elapsed() < Duration::from_millis(1500), "/health took {:?}", health_started.elapsed());

    // Requests in flight while the database is frozen; the later ones queue behind the first.
    let radiocodes: Vec<String> = tokens.iter().map(|token| long_radiocode(token, scene.phone.key)).collect();
    let locked_uuid = uuid_of(&locked);
    let (first, second, third, confirm, create) = futures_util::join!(
        timed(0, env.claim(&scene.cash, &scene.atm, &radiocodes[0])),
        timed(300, env.claim(&scene.cash, &scene.atm, &radiocodes[1])),
        timed(600, env.claim(&scene.cash, &scene.atm, &radiocodes[2])),
        timed(900, env.confirm(&scene.cash, &scene.atm, &locked_uuid, json!({"state": "COMPLETED"}))),
        timed(1200, keyed(&env, &scene, "hung-create-1")),
    );
    let answers = [&first, &second, &third, &confirm, &create];
    let seen: Vec<_> = answers.iter().map(|(elapsed, reply)| (reply.status.as_u16(), elapsed.as_millis())).collect();
    println!("answers while frozen (status, ms): {seen:?}");
    for (elapsed, reply) in answers {
        assert!(
            matches!(reply.status.as_u16(), 503 | 504),
            "a request against a frozen database answered {}",
            reply.describe()
        );
        assert!(*elapsed < ANSWER_DEADLINE, "answered only after {elapsed:?}: {}", reply.describe());
        if reply.status == 504 {
            let message = reply.json["message"].as_str().unwrap_or_default();
            assert!(message.contains("outcome of this request is unknown"), "{}", reply.describe());
        } else {
            assert!(reply.header("retry-after").is_some(), "503 without Retry-After: {}", reply.describe());
        }
    }
    assert!(
        answers.iter().any(|(_, reply)| reply.status == 503),
        "every request answered 504: the ones queued behind a frozen commit were never sent"
    );

    tokio::time::sleep(FROZEN.saturating_sub(frozen_at.elapsed())).await;
    cluster.resume();
    // Recovery: the pools reconnect or their connections resume.
    let started = Instant::now();
    while env.api.get_anonymous("/health").await.status != 200 {
        assert!(started.elapsed() < Duration::from_secs(30), "the server did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Anything still pending in the database has long finished.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Every request answered 503 left no trace; 504s may have.
    for (index, (_, reply)) in [&first, &second, &third].into_iter().enumerate() {
        let state = env.token_state(&scene.bank, &uuid_of(&tokens[index])).await;
        if reply.status == 503 {
            assert_eq!(state, "OPEN", "claim {index} was answered 503 and applied later");
        }
    }
    let (_, confirmed) = &confirm;
    if confirmed.status == 503 {
        assert_eq!(
            env.token_state(&scene.bank, &uuid_of(&locked)).await,
            "LOCKED",
            "a confirm answered 503 was applied later"
        );
    }
    let (_, created) = &create;
    let named =
        |list: Vec<serde_json::Value>| list.into_iter().filter(|token| token["refname"] == "hung-create-1").count();
    if created.status == 503 {
        assert_eq!(named(env.tokens(&scene.bank, "").await), 0, "a create answered 503 was applied later");
    }
    // The bank retries its create with the same key: exactly one token, whatever happened.
    let retried = keyed(&env, &scene, "hung-create-1").await;
    retried.assert_status(200);
    let again = keyed(&env, &scene, "hung-create-1").await;
    assert_eq!(again.ok()["uuid"], retried.ok()["uuid"]);
    assert_eq!(named(env.tokens(&scene.bank, "").await), 1);
    // And the tokens answered 503 can be claimed now.
    for (index, (_, reply)) in [&first, &second, &third].into_iter().enumerate() {
        if reply.status == 503 {
            env.claim_ok(&scene.cash, &scene.atm, &tokens[index], &scene.phone).await;
        }
    }
}
