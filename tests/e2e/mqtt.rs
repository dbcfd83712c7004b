//! MQTT trigger pushes (issue 8, item 10): cashgrid started with a broker (the local
//! Mosquitto) publishes `dncash.io ready` at start and, for every token a phone's trigger
//! locks, `{"data":D,"signature":S}` to `dncash-io/trigger/v1/<T>`: D the JSON text of
//! `{"triggercode":T,"token":<V-locked>}`, S its RSA-SHA256 signature. A subscriber (rumqttc)
//! checks all of it, the signature with the `rsa` crate — not the signer's implementation.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

use crate::flows::uuid_of;
use crate::harness::{Backend, TestEnv};
use crate::triggers::{phone_trigger_ok, trigger_code};
use crate::wire::V_LOCKED_KEYS;

/// The broker the tests use (scripts/test.sh makes sure it runs).
const BROKER_HOST: &str = "127.0.0.1";
const BROKER_PORT: u16 = 1883;
/// The signing key: a test fixture, written to a file the server reads.
const SIGNING_KEY: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keys/phone_c_2048.private.pem"));
/// Longest a test waits for a message that must come.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(20);

/// A subscriber: every publish on its topics, as (topic, payload).
struct Subscriber {
    messages: mpsc::Receiver<(String, Vec<u8>)>,
    _client: AsyncClient,
}

impl Subscriber {
    /// Connected and subscribed (both acknowledged) before it returns.
    async fn connect(topics: &[&str]) -> Self {
        let id = format!("cashgrid-e2e-{}", uuid::Uuid::new_v4().simple());
        let mut options = MqttOptions::new(id, BROKER_HOST, BROKER_PORT);
        options.set_keep_alive(Duration::from_secs(10));
        let (client, mut connection) = AsyncClient::new(options, 16);
        for topic in topics {
            client.subscribe(*topic, QoS::AtLeastOnce).await.expect("subscribe request");
        }
        let (sender, messages) = mpsc::channel(64);
        let (subscribed_sender, subscribed) = tokio::sync::oneshot::channel();
        let expected_acks = topics.len();
        actix_web::rt::spawn(async move {
            let mut acks = 0;
            let mut subscribed_sender = Some(subscribed_sender);
            while let Ok(event) = connection.poll().await {
                match event {
                    Event::Incoming(Packet::SubAck(_)) => {
                        acks += 1;
                        if acks == expected_acks {
                            if let Some(done) = subscribed_sender.take() {
                                let _ = done.send(());
                            }
                        }
                    }
                    Event::Incoming(Packet::Publish(publish)) => {
                        let handed_on = sender.send((publish.topic.clone(), publish.payload.to_vec())).await;
                        if handed_on.is_err() {
                            break;
                        }
                    }
                    _ => {}
                }
            }
        });
        tokio::time::timeout(MESSAGE_TIMEOUT, subscribed)
            .await
            .expect("subscribed in time (is Mosquitto running on 127.0.0.1:1883?)")
            .expect("subscribed");
        Self { messages, _client: client }
    }

    /// The next message on `topic` (others skipped), which must come.
    async fn next_on(&mut self, topic: &str) -> Vec<u8> {
        let deadline = Instant::now() + MESSAGE_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.messages.recv()).await {
                Ok(Some((received, payload))) if received == topic => return payload,
                Ok(Some(_)) => {}
                Ok(None) => panic!("the subscriber's connection ended"),
                Err(_) => panic!("nothing published on {topic} within {MESSAGE_TIMEOUT:?}"),
            }
        }
    }
}

/// Start cashgrid with MQTT pointed at the local broker and the fixture key in a file.
async fn start_with_mqtt(backend: Backend) -> TestEnv {
    let key_file = std::env::temp_dir().join(format!("cashgrid-mqtt-key-{}.pem", uuid::Uuid::new_v4().simple()));
    std::fs::write(&key_file, SIGNING_KEY).expect("write the key file");
    let key_path = key_file.display().to_string();
    let url = format!("mqtt://{BROKER_HOST}:{BROKER_PORT}");
    let env = TestEnv::start_with(backend, &["--mqtt-url", &url, "--mqtt-signature-key-file", &key_path]).await;
    // Read once at start.
    let _ = std::fs::remove_file(&key_file);
    env
}

pub async fn a_trigger_cash_out_is_published_signed_on_mqtt(backend: Backend) {
    let mut ready = Subscriber::connect(&["dncash-io"]).await;
    let env = start_with_mqtt(backend).await;
    assert_eq!(ready.next_on("dncash-io").await, b"dncash.io ready", "the ready message at start");

    let scene = env.scene("bank@example.com").await;
    let token = env.issue(&scene.bank, &scene.phone, 12_300).await;
    let code = trigger_code(&env, &scene).await;
    let topic = format!("dncash-io/trigger/v1/{code}");
    let mut pushes = Subscriber::connect(&[topic.as_str()]).await;
    phone_trigger_ok(&env, &code, &token).await;

    let payload = pushes.next_on(&topic).await;
    let message: Value = serde_json::from_slice(&payload).expect("a JSON payload");
    let fields: Vec<&str> = message.as_object().expect("an object").keys().map(String::as_str).collect();
    assert_eq!(fields, ["data", "signature"], "{message}");
    let data = message["data"].as_str().expect("data is JSON text");
    let signature = BASE64.decode(message["signature"].as_str().expect("a Base64 signature")).expect("Base64");

    let pushed: Value = serde_json::from_str(data).expect("data parses");
    assert_eq!(pushed["triggercode"], code.as_str(), "{pushed}");
    let locked = &pushed["token"];
    let keys: Vec<&str> = locked.as_object().expect("a token object").keys().map(String::as_str).collect();
    let mut expected_keys = V_LOCKED_KEYS.to_vec();
    expected_keys.sort_unstable();
    let mut sorted_keys = keys.clone();
    sorted_keys.sort_unstable();
    assert_eq!(sorted_keys, expected_keys, "V-locked: {locked}");
    assert_eq!(locked["uuid"], uuid_of(&token).as_str());
    assert_eq!(locked["state"], "LOCKED");
    assert_eq!(locked["amount"], 12_300);
    // The original's key order, in the text itself.
    let token_text = &data[data.find("\"token\":").expect("a token")..];
    let positions: Vec<usize> =
        V_LOCKED_KEYS.iter().map(|key| token_text.find(&format!("\"{key}\":")).expect("every key")).collect();
    assert!(positions.windows(2).all(|pair| pair[0] < pair[1]), "the original's key order: {data}");

    let public = RsaPrivateKey::from_pkcs1_pem(SIGNING_KEY).expect("fixture").to_public_key();
    let digest = Sha256::digest(data.as_bytes());
    public.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &signature).expect("the signature verifies");

    // The broker acknowledged it: the metric says so.
    let deadline = Instant::now() + MESSAGE_TIMEOUT;
    loop {
        let metrics = env.api.get_anonymous("/metrics").await.text;
        if metrics.lines().any(|line| line == "cashgrid_mqtt_pushes_total{result=\"published\"} 1") {
            assert!(metrics.contains("cashgrid_mqtt_connected 1"), "connected");
            break;
        }
        assert!(Instant::now() < deadline, "no published push counted:\n{metrics}");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}
