//! When the database drops every connection, requests answer 503 with `Retry-After` — never a
//! business answer, never a partial write — and the server recovers on its own.

use std::time::{Duration, Instant};

use crate::harness::{connect, Backend, TestEnv};
use crate::phone::long_radiocode;

/// How long recovery may take: the pool reconnects, the actor reloads its snapshot.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(20);

fn database_name(env: &TestEnv) -> String {
    let database = env.store.database.as_ref().expect("a PostgreSQL test");
    let name = database.url.rsplit('/').next().expect("database name");
    name.split('?').next().unwrap_or(name).to_owned()
}

/// Refuse new connections to the test database (or allow them again).
async fn allow_connections(env: &TestEnv, allow: bool) {
    let admin = connect(&crate::harness::admin_url()).await.expect("admin connection");
    let statement = format!("ALTER DATABASE \"{}\" ALLOW_CONNECTIONS {allow}", database_name(env));
    admin.batch_execute(&statement).await.expect("alter database");
}

async fn cut_every_connection(env: &TestEnv) {
    let admin = connect(&crate::harness::admin_url()).await.expect("admin connection");
    let name = database_name(env);
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&name],
        )
        .await
        .expect("terminate backends");
}

pub async fn a_lost_database_connection_answers_503_and_the_server_recovers(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let scene = env.scene("bank@resilience.test").await;
    let token = env.issue(&scene.bank, &scene.phone, 5_000).await;
    let radiocode = long_radiocode(&token, scene.phone.key);

    allow_connections(&env, false).await;
    cut_every_connection(&env).await;
    let refused = env.claim(&scene.cash, &scene.atm, &radiocode).await;
    refused.assert_status(503);
    assert!(refused.header("retry-after").is_some(), "503 without Retry-After: {}", refused.describe());
    assert_eq!(refused.json["message"], "Service Unavailable", "{}", refused.describe());
    let health = env.api.get_anonymous("/health").await;
    health.assert_status(503);
    allow_connections(&env, true).await;

    let started = Instant::now();
    let mut unavailable = 0;
    let locked = loop {
        let reply = env.claim(&scene.cash, &scene.atm, &radiocode).await;
        match reply.status.as_u16() {
            200 => break true,
            // An acknowledged-or-not commit during the cut: the retry finds the token locked.
            403 if reply.json["error"] == "Token not in OPEN state." => break false,
            503 => {
                unavailable += 1;
                assert!(reply.header("retry-after").is_some(), "503 without Retry-After: {}", reply.describe());
                assert_eq!(reply.json["message"], "Service Unavailable", "{}", reply.describe());
            }
            _ => panic!("unexpected answer while the database recovers: {}", reply.describe()),
        }
        assert!(started.elapsed() < RECOVERY_DEADLINE, "no recovery after {unavailable} answers of 503");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    };
    let stored = env.token(&scene.bank, token["uuid"].as_str().expect("uuid")).await;
    assert_eq!(stored["state"], "LOCKED", "exactly one lock, whatever the client saw (first answer 200: {locked})");

    let health = env.api.get_anonymous("/health").await;
    health.assert_status(200);
}
