//! Operations endpoints: liveness and Prometheus metrics.

use crate::harness::{Backend, TestEnv};

pub async fn health_and_metrics_answer(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let reply = env.api.get_anonymous("/health").await;
    reply.assert_status(200);

    // Some traffic, successful and not, so the request counters have samples.
    let scene = env.scene("bank@example.com").await;
    env.issue(&scene.bank, &scene.phone, 1000).await;
    env.tokens(&scene.bank, "").await;
    env.api
        .get_anonymous("/dnapi/token/v1/tokens")
        .await
        .assert_status(401);

    let reply = env.api.get_anonymous("/metrics").await;
    reply.assert_status(200);
    assert!(
        reply
            .text
            .lines()
            .any(|line| !line.starts_with('#') && line.contains("http_requests_total")),
        "/metrics must expose http_requests_total samples:\n{}",
        reply.text
    );
    assert!(
        reply
            .content_type
            .as_deref()
            .is_some_and(|value| value.starts_with("text/plain")),
        "Prometheus text format: content-type {:?}",
        reply.content_type
    );
}

const NO_CACHE_HEADERS: [(&str, &str); 4] = [
    ("surrogate-control", "no-store"),
    (
        "cache-control",
        "no-store, no-cache, must-revalidate, proxy-revalidate",
    ),
    ("pragma", "no-cache"),
    ("expires", "0"),
];
const ALLOW_HEADERS: &str =
    "Origin, X-Requested-With, Content-Type, Accept, Authorization, DN-API-KEY, DN-API-SECRET";
const ALLOW_METHODS: &str = "GET, PUT, POST, DELETE, OPTIONS";

#[track_caller]
fn assert_cors_and_no_cache(reply: &crate::api::Reply, origin: &str) {
    for (name, value) in NO_CACHE_HEADERS {
        assert_eq!(
            reply.header(name),
            Some(value),
            "header {name}: {}",
            reply.describe()
        );
    }
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some(origin),
        "{}",
        reply.describe()
    );
    assert_eq!(
        reply.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(
        reply.header("access-control-allow-headers"),
        Some(ALLOW_HEADERS)
    );
    assert_eq!(
        reply.header("access-control-allow-methods"),
        Some(ALLOW_METHODS)
    );
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

    let reply = env
        .api
        .request_with_headers(Method::GET, TOKENS, &with_origin, Body::None)
        .await;
    reply.assert_status(200);
    assert_eq!(
        reply.content_type.as_deref(),
        Some("application/json; charset=utf-8")
    );
    assert_cors_and_no_cache(&reply, origin);
    let reply = env.api.get(TOKENS, &scene.bank).await;
    assert_cors_and_no_cache(&reply, "undefined");
    let token = env.issue(&scene.bank, &scene.phone, 1000).await;
    let reply = env
        .api
        .get(
            &crate::flows::token_path(&crate::flows::uuid_of(&token)),
            &scene.bank,
        )
        .await;
    assert!(
        !reply.text.contains(": ") && !reply.text.contains('\n'),
        "compact JSON: {}",
        reply.text
    );

    // Failures carry them too.
    let reply = env
        .api
        .request_with_headers(Method::GET, TOKENS, &[("Origin", origin)], Body::None)
        .await;
    reply.assert_status(401);
    assert_cors_and_no_cache(&reply, origin);

    // A CORS preflight under an API prefix needs no credentials.
    let preflight = [
        ("Origin", origin),
        ("Access-Control-Request-Method", "POST"),
    ];
    let reply = env
        .api
        .request_with_headers(Method::OPTIONS, TOKENS, &preflight, Body::None)
        .await;
    reply.assert_status(200);
    assert_cors_and_no_cache(&reply, origin);
    let allow = reply.header("allow").unwrap_or_default();
    assert!(
        allow.contains("GET") && allow.contains("POST"),
        "Allow lists the path's methods: {}",
        reply.describe()
    );
}
