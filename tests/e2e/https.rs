//! HTTPS (issue 8, item 11): with `--tls-cert` and `--tls-key` the server speaks TLS (rustls)
//! on its port. The certificate is made for the test (rcgen); the client (awc with rustls)
//! trusts exactly that certificate.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Backend, TestEnv};

/// A self-signed certificate for 127.0.0.1 and localhost, written to `dir` as PEM files.
fn certificate(dir: &std::path::Path) -> (Vec<u8>, String, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("a test certificate");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, certified.cert.pem()).expect("write the certificate");
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).expect("write the key");
    (certified.cert.der().to_vec(), cert_path.display().to_string(), key_path.display().to_string())
}

/// An HTTPS client that trusts only `certificate`.
fn client_trusting(certificate: Vec<u8>) -> awc::Client {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(certificate)).expect("a root certificate");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = awc::Connector::new().rustls_0_23(Arc::new(config));
    awc::Client::builder().connector(connector).timeout(Duration::from_secs(30)).finish()
}

pub async fn the_server_speaks_https_with_the_configured_certificate(backend: Backend) {
    let dir = std::env::temp_dir().join(format!("cashgrid-tls-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("a certificate directory");
    let (der, cert, key) = certificate(&dir);
    let env = TestEnv::start_with(backend, &["--tls-cert", &cert, "--tls-key", &key]).await;
    let base = env.base_url();
    assert!(base.starts_with("https://127.0.0.1:"), "the listening line names https: {base}");
    let client = client_trusting(der);

    let mut health = client.get(format!("{base}/health")).send().await.expect("HTTPS request");
    assert_eq!(health.status().as_u16(), 200);
    let body: Value = health.json().await.expect("JSON");
    assert_eq!(body["status"], "ok");

    // The dncash APIs over TLS, as integrators' clients call them.
    env.customer("bank@example.com");
    let bank = env.access("bank@example.com", "token-api");
    let mut devices = client
        .get(format!("{base}/dnapi/token/v1/devices"))
        .insert_header(("DN-API-KEY", bank.apikey.as_str()))
        .insert_header(("DN-API-SECRET", bank.apisecret.as_str()))
        .send()
        .await
        .expect("HTTPS request");
    assert_eq!(devices.status().as_u16(), 200);
    assert_eq!(devices.json::<Value>().await.expect("JSON"), serde_json::json!([]));

    // Plain HTTP on the TLS port gets no answer, and a client that does not trust the
    // certificate does not connect.
    let plain = format!("http://{}/health", base.trim_start_matches("https://"));
    let plain_answer = awc::Client::builder().timeout(Duration::from_secs(10)).finish().get(plain).send().await;
    assert!(plain_answer.as_ref().map_or(true, |response| response.status().as_u16() != 200), "{plain_answer:?}");
    let (other_der, _, _) = certificate(&dir);
    let distrusting = client_trusting(other_der).get(format!("{base}/health")).send().await;
    assert!(distrusting.is_err(), "an unknown certificate must not verify");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The client address in the log comes from `X-Forwarded-For` only when the peer is a
/// configured trusted proxy; anyone else's header is ignored.
pub async fn forwarded_addresses_are_believed_only_from_trusted_proxies(backend: Backend) {
    for (trusted, expected) in [(Some("127.0.0.0/8"), "198.51.100.7"), (None, "127.0.0.1")] {
        let args: Vec<&str> = trusted.map_or_else(Vec::new, |proxies| vec!["--trusted-proxies", proxies]);
        let env = TestEnv::start_with(backend, &args).await;
        let reply = env
            .api
            .request_with_headers(
                awc::http::Method::POST,
                "/dnapi/admin/v1/auth",
                &[("X-Forwarded-For", "203.0.113.1, 198.51.100.7"), ("X-Forwarded-Proto", "https")],
                crate::api::Body::Json(serde_json::json!({"user": "nobody@example.com", "password": "wrong"})),
            )
            .await;
        reply.assert_status(200);
        let log_path = env.store.logs_dir.join("server-0.stderr.log");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            if let Some(line) = log.lines().find(|line| line.contains("portal login refused")) {
                assert!(line.contains(expected), "trusted {trusted:?}: {line}");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "no refused login logged:\n{log}");
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
