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
