//! MQTT trigger pushes, as the original published them (spec §10): when a phone's trigger locks
//! a token, `{"data":D,"signature":S}` goes to topic `dncash-io/trigger/v1/<T>`, where D is the
//! JSON text of `{"triggercode":T,"token":<V-locked>}` and S the Base64 RSA-SHA256 signature of D
//! under the configured key; `dncash.io ready` goes to topic `dncash-io` once at start.
//!
//! Best effort, as in the original: the long poll and the ATM socket are the reliable paths.
//! A push is offered after the lock is committed; it waits in a bounded queue
//! ([`QUEUE_CAPACITY`]) and then in the client's bounded request channel
//! ([`REQUEST_CAPACITY`]); when either is full the push is dropped and counted, never waited
//! for. Publishes use QoS 1 and count as `published` when the broker acknowledges them.
//! The connection is retried with a bounded back-off; connecting has a deadline and the
//! session a keep-alive, so a dead broker is noticed.
//!
//! Off unless configured, and there is no built-in key (the original shipped a 512-bit demo
//! key). Signing goes through `crypto::private_key` (constant-time).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rumqttc::{AsyncClient, ClientError, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

use crate::crypto::private_key::RsaSigningKey;
use crate::metrics as m;
use crate::trigger_actor::TriggerPush;

/// Pushes waiting for the publisher task.
pub const QUEUE_CAPACITY: usize = 1_024;
/// Publishes waiting for the connection (rumqttc's request channel).
pub const REQUEST_CAPACITY: usize = 256;
/// Longest a connection attempt may take.
const CONNECT_TIMEOUT_SECS: u64 = 10;
/// Keep-alive of the MQTT session: a silent broker is given up after about 1.5 times this.
const KEEP_ALIVE: Duration = Duration::from_secs(30);
/// Back-off after a failed connection, doubling up to the maximum.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// Publishes in flight without an acknowledgement.
const INFLIGHT_MAX: u16 = 100;
/// Largest packet sent or accepted (a push is about 1 kB plus the signature).
const PACKET_MAX_BYTES: usize = 64 * 1024;
const DEFAULT_PORT: u16 = 1883;

pub const TOPIC_PREFIX: &str = "dncash-io/trigger/v1/";
pub const READY_TOPIC: &str = "dncash-io";
pub const READY_MESSAGE: &str = "dncash.io ready";

/// Renders a push's `data`: the JSON text of `{"triggercode":T,"token":<V-locked>}`. The views
/// are the frontend's, so the wiring passes its renderer in.
pub type RenderPush = fn(&TriggerPush) -> String;

/// Where and how to publish.
#[derive(Clone)]
pub struct MqttConfig {
    pub broker: Broker,
    pub user: Option<String>,
    pub password: Option<String>,
    pub signing_key: Arc<RsaSigningKey>,
    pub render: RenderPush,
}

impl fmt::Debug for MqttConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("MqttConfig")
            .field("broker", &self.broker)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "…"))
            .field("signing_key", &self.signing_key)
            .finish()
    }
}

/// A broker address from `MQTT_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerUrlError {
    #[error("MQTT URL '{0}': only plain TCP brokers are supported (mqtt://host[:port] or tcp://host[:port])")]
    UnsupportedScheme(String),
    #[error("MQTT URL '{0}': give the user and password as MQTT_USER and MQTT_PASSWORD, not in the URL")]
    CredentialsInUrl(String),
    #[error("MQTT URL '{0}': expected host[:port]")]
    Malformed(String),
}

impl Broker {
    /// `mqtt://host[:port]`, `tcp://host[:port]` or `host[:port]`; port 1883 by default.
    pub fn parse(url: &str) -> Result<Self, BrokerUrlError> {
        let url = url.trim();
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("mqtt") || scheme.eq_ignore_ascii_case("tcp") => rest,
            Some(_) => return Err(BrokerUrlError::UnsupportedScheme(url.to_owned())),
            None => url,
        };
        let authority = rest.trim_end_matches('/');
        if authority.contains('@') {
            return Err(BrokerUrlError::CredentialsInUrl(url.to_owned()));
        }
        let malformed = || BrokerUrlError::Malformed(url.to_owned());
        let (host, port) = match authority.rsplit_once(':') {
            // `[::1]:1883`; a bare IPv6 address needs the brackets.
            Some((host, port)) if !host.contains(':') || host.starts_with('[') => {
                (host, port.parse::<u16>().map_err(|_| malformed())?)
            }
            Some(_) => return Err(malformed()),
            None => (authority, DEFAULT_PORT),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains('/') || port == 0 {
            return Err(malformed());
        }
        Ok(Self { host: host.to_owned(), port })
    }
}

/// The engine's end of the push queue.
#[derive(Clone)]
pub struct MqttPublisher {
    queue: mpsc::Sender<TriggerPush>,
}

impl MqttPublisher {
    /// Queue a push without waiting; a full queue drops it (counted).
    pub fn offer(&self, push: &TriggerPush) {
        match self.queue.try_send(push.clone()) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => m::record_mqtt_push("dropped"),
            Err(mpsc::error::TrySendError::Closed(_)) => m::record_mqtt_push("failed"),
        }
    }
}

/// The publisher and the task that connects and publishes: run the task on a thread that
/// has a tokio runtime.
pub fn start(config: MqttConfig) -> (MqttPublisher, impl std::future::Future<Output = ()> + 'static) {
    let (queue, pushes) = mpsc::channel(QUEUE_CAPACITY);
    let client_id = format!("cashgrid-{}", uuid::Uuid::new_v4().simple());
    let mut options = MqttOptions::new(client_id, config.broker.host.clone(), config.broker.port);
    options
        .set_keep_alive(KEEP_ALIVE)
        .set_inflight(INFLIGHT_MAX)
        .set_max_packet_size(PACKET_MAX_BYTES, PACKET_MAX_BYTES);
    if let Some(user) = &config.user {
        options.set_credentials(user.clone(), config.password.clone().unwrap_or_default());
    }
    let (client, mut connection) = AsyncClient::new(options, REQUEST_CAPACITY);
    let mut network = connection.network_options();
    network.set_connection_timeout(CONNECT_TIMEOUT_SECS);
    connection.set_network_options(network);
    let broker = config.broker.clone();
    let task = async move {
        // Sent once the connection is up (it waits in the request channel until then). QoS 0,
        // as the original's: only pushes are acknowledged, so acknowledgements count pushes.
        if let Err(error) = client.try_publish(READY_TOPIC, QoS::AtMostOnce, false, READY_MESSAGE) {
            tracing::warn!(%error, "MQTT ready message not queued");
        }
        let publishing = publish_all(client, config, pushes);
        let connecting = async move {
            let mut retry = RETRY_FIRST;
            let mut connected = false;
            loop {
                match connection.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        tracing::info!(host = %broker.host, port = broker.port, "MQTT connected");
                        connected = true;
                        retry = RETRY_FIRST;
                        m::set_mqtt_connected(true);
                    }
                    Ok(Event::Incoming(Packet::PubAck(_))) => m::record_mqtt_push("published"),
                    Ok(_) => {}
                    Err(error) => {
                        if connected {
                            tracing::warn!(%error, "MQTT connection lost; reconnecting");
                        } else {
                            tracing::debug!(%error, ?retry, "MQTT connection failed; retrying");
                        }
                        connected = false;
                        m::set_mqtt_connected(false);
                        tokio::time::sleep(retry).await;
                        retry = (retry * 2).min(RETRY_MAX);
                    }
                }
            }
        };
        // The connection loop never ends; the publisher ends when the engine goes away.
        tokio::select! {
            () = publishing => {}
            () = connecting => {}
        }
        m::set_mqtt_connected(false);
    };
    (MqttPublisher { queue }, task)
}

async fn publish_all(client: AsyncClient, config: MqttConfig, mut pushes: mpsc::Receiver<TriggerPush>) {
    while let Some(push) = pushes.recv().await {
        let Some(payload) = signed_payload(&config, &push) else {
            m::record_mqtt_push("failed");
            continue;
        };
        match client.try_publish(format!("{TOPIC_PREFIX}{}", push.code), QoS::AtLeastOnce, false, payload) {
            Ok(()) => {}
            Err(ClientError::TryRequest(_)) => m::record_mqtt_push("dropped"),
            Err(error) => {
                tracing::warn!(%error, "MQTT push not queued");
                m::record_mqtt_push("failed");
            }
        }
    }
}

/// `{"data":D,"signature":S}` for one push, or `None` if signing failed (logged).
fn signed_payload(config: &MqttConfig, push: &TriggerPush) -> Option<Vec<u8>> {
    let data = (config.render)(push);
    let signature = match config.signing_key.sign_sha256(data.as_bytes()) {
        Ok(signature) => base64::engine::general_purpose::STANDARD.encode(signature),
        Err(error) => {
            tracing::error!(%error, "MQTT push not signed");
            return None;
        }
    };
    serde_json::to_vec(&serde_json::json!({ "data": data, "signature": signature })).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_name_a_plain_tcp_host_and_port() {
        let broker = |host: &str, port| Ok(Broker { host: host.to_owned(), port });
        assert_eq!(Broker::parse("mqtt://127.0.0.1:1883"), broker("127.0.0.1", 1883));
        assert_eq!(Broker::parse("tcp://broker.example:2883/"), broker("broker.example", 2883));
        assert_eq!(Broker::parse("broker.example"), broker("broker.example", 1883));
        assert_eq!(Broker::parse("MQTT://[::1]:1884"), broker("::1", 1884));
        assert!(matches!(Broker::parse("mqtts://b:8883"), Err(BrokerUrlError::UnsupportedScheme(_))));
        assert!(matches!(Broker::parse("ws://b:8088"), Err(BrokerUrlError::UnsupportedScheme(_))));
        assert!(matches!(Broker::parse("mqtt://u:p@b"), Err(BrokerUrlError::CredentialsInUrl(_))));
        for bad in ["mqtt://", "mqtt://b:x", "mqtt://b:0", "::1", "mqtt://b:1883/path"] {
            assert!(matches!(Broker::parse(bad), Err(BrokerUrlError::Malformed(_))), "{bad}");
        }
    }
}
