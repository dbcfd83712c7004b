//! Operations endpoints: liveness and Prometheus metrics.

use crate::api::sample;
use crate::harness::{Backend, TestEnv};

pub async fn health_and_metrics_answer(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let reply = env.api.get_anonymous("/health").await;
    reply.assert_status(200);

    // Some traffic, successful and not, so the request counters have samples.
    let scene = env.scene("bank@example.com").await;
    env.issue(&scene.bank, &scene.phone, 1000).await;
    env.tokens(&scene.bank, "").await;
    env.api.get_anonymous("/dnapi/token/v1/tokens").await.assert_status(401);

    let reply = env.api.get_anonymous("/metrics").await;
    reply.assert_status(200);
    assert!(
        reply.text.lines().any(|line| !line.starts_with('#') && line.contains("http_requests_total")),
        "/metrics must expose http_requests_total samples:\n{}",
        reply.text
    );
    assert!(
        reply.content_type.as_deref().is_some_and(|value| value.starts_with("text/plain")),
        "Prometheus text format: content-type {:?}",
        reply.content_type
    );
}

const NO_CACHE_HEADERS: [(&str, &str); 4] = [
    ("surrogate-control", "no-store"),
    ("cache-control", "no-store, no-cache, must-revalidate, proxy-revalidate"),
    ("pragma", "no-cache"),
    ("expires", "0"),
];
const ALLOW_HEADERS: &str = "Origin, X-Requested-With, Content-Type, Accept, Authorization, DN-API-KEY, DN-API-SECRET";
const ALLOW_METHODS: &str = "GET, PUT, POST, DELETE, OPTIONS";

#[track_caller]
fn assert_cors_and_no_cache(reply: &crate::api::Reply, origin: &str) {
    for (name, value) in NO_CACHE_HEADERS {
        assert_eq!(reply.header(name), Some(value), "header {name}: {}", reply.describe());
    }
    assert_eq!(reply.header("access-control-allow-origin"), Some(origin), "{}", reply.describe());
    assert_eq!(reply.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(reply.header("access-control-allow-headers"), Some(ALLOW_HEADERS));
    assert_eq!(reply.header("access-control-allow-methods"), Some(ALLOW_METHODS));
}

/// §1.1: no-cache and CORS headers on every API response, the Origin echoed (the literal
/// `undefined` without one), compact JSON in UTF-8; §1.4: preflights need no credentials.
pub async fn responses_carry_the_original_cache_and_cors_headers(backend: Backend) {
    use awc::http::Method;

    use crate::api::Body;
    use crate::flows::TOKENS;

    let env = TestEnv::start(backend).await;
    let scene = env.scene("bank@example.com").await;
    let origin = "https://portal.example.com";
    let with_origin = [
        ("Origin", origin),
        ("DN-API-KEY", scene.bank.apikey.as_str()),
        ("DN-API-SECRET", scene.bank.apisecret.as_str()),
    ];

    let reply = env.api.request_with_headers(Method::GET, TOKENS, &with_origin, Body::None).await;
    reply.assert_status(200);
    assert_eq!(reply.content_type.as_deref(), Some("application/json; charset=utf-8"));
    assert_cors_and_no_cache(&reply, origin);
    let reply = env.api.get(TOKENS, &scene.bank).await;
    assert_cors_and_no_cache(&reply, "undefined");
    let token = env.issue(&scene.bank, &scene.phone, 1000).await;
    let reply = env.api.get(&crate::flows::token_path(&crate::flows::uuid_of(&token)), &scene.bank).await;
    assert!(!reply.text.contains(": ") && !reply.text.contains('\n'), "compact JSON: {}", reply.text);

    // Failures carry them too.
    let reply = env.api.request_with_headers(Method::GET, TOKENS, &[("Origin", origin)], Body::None).await;
    reply.assert_status(401);
    assert_cors_and_no_cache(&reply, origin);

    // A CORS preflight under an API prefix needs no credentials.
    let preflight = [("Origin", origin), ("Access-Control-Request-Method", "POST")];
    let reply = env.api.request_with_headers(Method::OPTIONS, TOKENS, &preflight, Body::None).await;
    reply.assert_status(200);
    assert_cors_and_no_cache(&reply, origin);
    let allow = reply.header("allow").unwrap_or_default();
    assert!(allow.contains("GET") && allow.contains("POST"), "Allow lists the path's methods: {}", reply.describe());
}

/// Tokens per state come from the store (every state present, 0 when none) and pool usage
/// from the store's pools; the first scrape starts the count, a later one shows it.
pub async fn store_gauges_count_tokens_per_state_and_show_pool_usage(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let scene = env.scene("gauges@example.com").await;
    for amount in [1000, 2000] {
        env.issue(&scene.bank, &scene.phone, amount).await;
    }
    let token = env.issue(&scene.bank, &scene.phone, 3000).await;
    let uuid = token["uuid"].as_str().unwrap_or_default().to_owned();
    env.claim_ok(&scene.cash, &scene.atm, &token, &scene.phone).await;
    env.confirm(&scene.cash, &scene.atm, &uuid, serde_json::json!({"state": "COMPLETED"})).await.ok();

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let scrape = loop {
        let reply = env.api.get_anonymous("/metrics").await;
        reply.assert_status(200);
        let counted = sample(&reply.text, r#"cashgrid_tokens{state="OPEN"}"#) == Some(2.0)
            && sample(&reply.text, r#"cashgrid_tokens{state="COMPLETED"}"#) == Some(1.0);
        if counted || std::time::Instant::now() > deadline {
            break reply.text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let states = [
        ("OPEN", 2.0),
        ("LOCKED", 0.0),
        ("COMPLETED", 1.0),
        ("CANCELED", 0.0),
        ("FAILED", 0.0),
        ("REJECTED", 0.0),
        ("RETRACTED", 0.0),
        ("DELETED", 0.0),
        ("EXPIRED", 0.0),
    ];
    for (state, count) in states {
        let series = format!(r#"cashgrid_tokens{{state="{state}"}}"#);
        assert_eq!(sample(&scrape, &series), Some(count), "{series} in:\n{scrape}");
    }

    let (query_pool, commit_pool, commit_max) = match backend {
        Backend::Postgres => ("query", "commit", 1.0),
        Backend::Sqlite => ("read", "write", 1.0),
    };
    let commit_max_series = format!(r#"cashgrid_store_pool_max_connections{{pool="{commit_pool}"}}"#);
    assert_eq!(sample(&scrape, &commit_max_series), Some(commit_max), "{commit_max_series} in:\n{scrape}");
    for pool in [query_pool, commit_pool] {
        for series in [
            format!(r#"cashgrid_store_pool_connections{{pool="{pool}",state="in_use"}}"#),
            format!(r#"cashgrid_store_pool_connections{{pool="{pool}",state="idle"}}"#),
            format!(r#"cashgrid_store_pool_waiting{{pool="{pool}"}}"#),
        ] {
            assert!(sample(&scrape, &series).is_some(), "{series} missing in:\n{scrape}");
        }
    }
    // Series that must exist before their first event, so that rates start at 0.
    for series in [
        r#"cashgrid_actor_restarts_total{kind="token"}"#,
        r#"cashgrid_overload_rejections_total{kind="writer"}"#,
        r#"cashgrid_store_commits_total{result="error"}"#,
        "cashgrid_store_fence_conflicts_total",
    ] {
        assert_eq!(sample(&scrape, series), Some(0.0), "{series} in:\n{scrape}");
    }
}

/// Wait (at most 10 s) until `cashgrid_actors_live{kind="token"}` is `expected`.
async fn wait_for_live_token_actors(env: &TestEnv, expected: f64, why: &str) {
    env.api.wait_for_metric(r#"cashgrid_actors_live{kind="token"}"#, expected, why).await;
}

/// Actors hold the tokens in use: a token issued here starts with an actor, and one that reached
/// a final state leaves memory about two seconds after its last request, yet still answers (its
/// next request loads it again).
pub async fn finished_tokens_leave_memory_and_still_answer(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let scene = env.scene("finished@example.com").await;
    let token = env.issue(&scene.bank, &scene.phone, 700).await;
    let uuid = token["uuid"].as_str().unwrap_or_default().to_owned();
    wait_for_live_token_actors(&env, 1.0, "an issued token has its actor").await;
    env.claim_ok(&scene.cash, &scene.atm, &token, &scene.phone).await;
    env.confirm(&scene.cash, &scene.atm, &uuid, serde_json::json!({"state": "COMPLETED"})).await.ok();
    wait_for_live_token_actors(&env, 0.0, "the finished token's actor stayed").await;

    let path = format!("/dnapi/token/v1/tokens/{uuid}");
    let updated = env.api.put(&path, &scene.bank, serde_json::json!({"clearstate": 1})).await;
    assert_eq!(updated.ok()["clearstate"], 1, "{}", updated.describe());
    assert_eq!(updated.json["state"], "COMPLETED");
}
