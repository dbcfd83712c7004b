//! Typed settings. Precedence: command-line flag, then environment, then the configuration
//! file, then the defaults below. Settings are passed down explicitly; nothing is global.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use cashgrid_actors::crypto::private_key::RsaSigningKey;
use cashgrid_actors::mqtt::{Broker, MqttConfig};
use cashgrid_http::client_origin::TrustedProxies;
use cashgrid_http::ErrorStatus;
use serde::Deserialize;

use crate::tls::TlsFiles;

const DEFAULT_BIND: &str = "127.0.0.1:8080";
const DEFAULT_DATA_DIR: &str = "./data";
const DEFAULT_POOL_SIZE: usize = 16;
/// Group commits in flight at once. One gives the biggest batches and the least CPU per write
/// on a machine with fast fsync (docs/PERFORMANCE.md); more help where commits are slow.
const DEFAULT_COMMIT_CONNECTIONS: usize = 1;
const DEFAULT_SEND_TIMEOUT_MS: u64 = 5_000;
const DEFAULT_STORE_TIMEOUT_MS: u64 = 5_000;
const DEFAULT_BODY_TIMEOUT_MS: u64 = 30_000;
/// Open client connections the server keeps at most (all workers together), unless set; it is
/// also kept below the process's descriptor limit (see `server::connection_bound`).
const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
const SERVER_KEY_FILE: &str = "server.key";

/// The configuration file; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub bind: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub database_pool_size: Option<usize>,
    pub database_commit_connections: Option<usize>,
    pub server_key_file: Option<PathBuf>,
    pub error_status: Option<String>,
    pub workers: Option<usize>,
    pub arbiters: Option<usize>,
    pub send_timeout_ms: Option<u64>,
    pub store_timeout_ms: Option<u64>,
    pub body_timeout_ms: Option<u64>,
    pub max_connections: Option<usize>,
    pub min_rsa_key_bits: Option<usize>,
    pub allow_any_rsa_exponent: Option<bool>,
    pub commit_batch_max: Option<usize>,
    pub commit_linger_us: Option<u64>,
    pub fixed_trigger_codes: Option<bool>,
    pub trigger_wait_ms: Option<u64>,
    pub feed_buffer: Option<usize>,
    pub expiry_interval_ms: Option<u64>,
    pub max_history_days: Option<u32>,
    pub jwt_secret: Option<String>,
    pub jwt_valid_hours: Option<u64>,
    pub captcha_off: Option<bool>,
    pub mqtt_url: Option<String>,
    pub mqtt_user: Option<String>,
    pub mqtt_password: Option<String>,
    pub mqtt_signature_key_file: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub trusted_proxies: Option<ProxyList>,
}

/// `trusted_proxies` in the file: `"10.0.0.0/8, 192.168.1.7"` or `["10.0.0.0/8", "192.168.1.7"]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ProxyList {
    Text(String),
    List(Vec<String>),
}

impl FileSettings {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// Where the data lives: flags shared by `serve` and the admin commands.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// Directory of the embedded database and the server key [default: ./data].
    #[arg(long, env = "CASHGRID_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// PostgreSQL URL; without it the embedded SQLite store in the data directory is used.
    #[arg(long, env = "DATABASE_URL", global = true)]
    database_url: Option<String>,
    /// File holding the server key (Base64) [default: <data-dir>/server.key, created if absent].
    #[arg(long, env = "CASHGRID_SERVER_KEY_FILE", global = true)]
    server_key_file: Option<PathBuf>,
    /// PostgreSQL connections per process.
    #[arg(long, env = "CASHGRID_DATABASE_POOL_SIZE", global = true)]
    database_pool_size: Option<usize>,
    /// PostgreSQL connections for group commits, each with one batch in flight [default: 1].
    #[arg(long, env = "CASHGRID_DATABASE_COMMIT_CONNECTIONS", global = true)]
    database_commit_connections: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct StoreSettings {
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub server_key_file: PathBuf,
    pub pool_size: usize,
    pub commit_connections: usize,
}

impl StoreArgs {
    pub fn resolve(self, file: &FileSettings) -> StoreSettings {
        let data_dir = self.data_dir.or_else(|| file.data_dir.clone()).unwrap_or_else(|| DEFAULT_DATA_DIR.into());
        let server_key_file = self
            .server_key_file
            .or_else(|| file.server_key_file.clone())
            .unwrap_or_else(|| data_dir.join(SERVER_KEY_FILE));
        StoreSettings {
            database_url: self.database_url.or_else(|| file.database_url.clone()).filter(|url| !url.is_empty()),
            pool_size: self.database_pool_size.or(file.database_pool_size).unwrap_or(DEFAULT_POOL_SIZE),
            commit_connections: self
                .database_commit_connections
                .or(file.database_commit_connections)
                .unwrap_or(DEFAULT_COMMIT_CONNECTIONS),
            data_dir,
            server_key_file,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080]; port 0 picks a free port.
    #[arg(long, env = "CASHGRID_BIND")]
    bind: Option<String>,
    /// `original` answers business errors with the original's 500s; `4xx` with client errors.
    #[arg(long, env = "CASHGRID_ERROR_STATUS")]
    error_status: Option<String>,
    /// HTTP worker threads [default: one per core].
    #[arg(long, env = "CASHGRID_WORKERS")]
    workers: Option<usize>,
    /// Threads hosting entity actors [default: one per core].
    #[arg(long, env = "CASHGRID_ARBITERS")]
    arbiters: Option<usize>,
    /// Every trigger code is its cash device's uuid (as the original's USE_FIXED_TRIGGER_CODES).
    #[arg(long, env = "USE_FIXED_TRIGGER_CODES", value_parser = clap::builder::BoolishValueParser::new())]
    fixed_trigger_codes: Option<bool>,
    /// Longest a trigger long poll is held before it is answered 204 [default: 120000].
    #[arg(long, env = "CASHGRID_TRIGGER_WAIT_MS")]
    trigger_wait_ms: Option<u64>,
    /// Events buffered per live-feed subscriber before it is dropped as too slow [default: 1024].
    #[arg(long, env = "CASHGRID_FEED_BUFFER")]
    feed_buffer: Option<usize>,
    /// Daily, delete final tokens (with events and clearing rows) older than this many days;
    /// 0 keeps them [default: 90].
    #[arg(long, env = "MAX_HISTORY_DAYS")]
    max_history_days: Option<u32>,
    /// Portal JWT signing secret [default: a key derived from the server key]. Prefer the
    /// environment or the configuration file: flags are visible to other local users.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// Deadline of every database call and commit, in ms; a call past it answers 503 (nothing
    /// done) or 504 (outcome unknown) [default: 5000].
    #[arg(long, env = "CASHGRID_STORE_TIMEOUT_MS")]
    store_timeout_ms: Option<u64>,
    /// How long a whole request body may take to arrive, in ms; then 408 and the connection is
    /// closed [default: 30000].
    #[arg(long, env = "CASHGRID_BODY_TIMEOUT_MS")]
    body_timeout_ms: Option<u64>,
    /// Open client connections kept at most, all workers together; also kept below the
    /// descriptor limit [default: 10000].
    #[arg(long, env = "CASHGRID_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Smallest RSA modulus, in bits, of a phone's public key [default: 1024; 2048 is prudent].
    #[arg(long, env = "CASHGRID_MIN_RSA_KEY_BITS")]
    min_rsa_key_bits: Option<usize>,
    /// Accept phone keys with public exponents other than 65537 [default: false].
    #[arg(long, env = "CASHGRID_ALLOW_ANY_RSA_EXPONENT", num_args = 0..=1, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    allow_any_rsa_exponent: Option<bool>,
    /// Lifetime of a portal session in hours [default: 168].
    #[arg(long, env = "JWT_VALID_HOURS")]
    jwt_valid_hours: Option<u64>,
    /// Allow portal self-registration without a captcha. reCAPTCHA cannot be verified by this
    /// server, so registration is refused unless this is set.
    #[arg(long, env = "CAPTCHA_OFF", num_args = 0..=1, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    captcha_off: Option<bool>,
    /// Publish locked trigger tokens to this MQTT broker (mqtt://host[:port]); off without it.
    #[arg(long, env = "MQTT_URL")]
    mqtt_url: Option<String>,
    /// MQTT user name.
    #[arg(long, env = "MQTT_USER")]
    mqtt_user: Option<String>,
    /// MQTT password. Prefer the environment or the configuration file.
    #[arg(long, env = "MQTT_PASSWORD", hide_env_values = true)]
    mqtt_password: Option<String>,
    /// RSA private key (PEM, PKCS#1 or PKCS#8; literal \n allowed) that signs MQTT pushes.
    /// Prefer the environment or a key file: flags are visible to other local users.
    #[arg(long, env = "MQTT_SIGNATURE_KEY", hide_env_values = true)]
    mqtt_signature_key: Option<String>,
    /// File holding the MQTT signing key (PEM), instead of MQTT_SIGNATURE_KEY.
    #[arg(long, env = "MQTT_SIGNATURE_KEY_FILE")]
    mqtt_signature_key_file: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key) instead of plain HTTP.
    #[arg(long, env = "CASHGRID_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "CASHGRID_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Reverse proxies (IPs or CIDR blocks, comma-separated) whose X-Forwarded-For/-Proto/-Host
    /// headers are believed [default: none].
    #[arg(long, env = "CASHGRID_TRUSTED_PROXIES")]
    trusted_proxies: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub bind: SocketAddr,
    /// HTTPS when set.
    pub tls: Option<TlsFiles>,
    pub trusted_proxies: TrustedProxies,
    pub error_status: ErrorStatus,
    pub workers: usize,
    pub body_timeout: Duration,
    pub max_connections: usize,
    pub engine: cashgrid_actors::EngineConfig,
    pub store: StoreSettings,
}

impl ServeArgs {
    pub fn resolve(self, file: &FileSettings, store: StoreSettings) -> anyhow::Result<ServeSettings> {
        let bind_text = self.bind.or_else(|| file.bind.clone()).unwrap_or_else(|| DEFAULT_BIND.into());
        let bind = bind_text.parse().with_context(|| format!("invalid bind address '{bind_text}'"))?;
        let error_text = self.error_status.or_else(|| file.error_status.clone()).unwrap_or_else(|| "original".into());
        let error_status = ErrorStatus::parse(&error_text)
            .with_context(|| format!("invalid error status '{error_text}': use 'original' or '4xx'"))?;
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let mut engine = cashgrid_actors::EngineConfig {
            arbiters: self.arbiters.or(file.arbiters).unwrap_or(cores).max(1),
            send_timeout: Duration::from_millis(file.send_timeout_ms.unwrap_or(DEFAULT_SEND_TIMEOUT_MS)),
            store_timeout: Duration::from_millis(
                self.store_timeout_ms.or(file.store_timeout_ms).unwrap_or(DEFAULT_STORE_TIMEOUT_MS).max(1),
            ),
            ..cashgrid_actors::EngineConfig::default()
        };
        if let Some(bits) = self.min_rsa_key_bits.or(file.min_rsa_key_bits) {
            engine.key_policy.min_bits = bits;
        }
        if let Some(any) = self.allow_any_rsa_exponent.or(file.allow_any_rsa_exponent) {
            engine.key_policy.any_exponent = any;
        }
        if let Some(batch_max) = file.commit_batch_max {
            engine.writer.batch_max = batch_max.max(1);
        }
        if let Some(linger) = file.commit_linger_us {
            engine.writer.linger = Duration::from_micros(linger);
        }
        if let Some(fixed) = self.fixed_trigger_codes.or(file.fixed_trigger_codes) {
            engine.triggers.fixed_codes = fixed;
        }
        if let Some(wait) = self.trigger_wait_ms.or(file.trigger_wait_ms) {
            engine.triggers.wait_max = Duration::from_millis(wait.max(1));
        }
        if let Some(buffer) = self.feed_buffer.or(file.feed_buffer) {
            engine.feed_buffer = buffer.max(1);
        }
        if let Some(interval) = file.expiry_interval_ms {
            engine.expiry.interval = Duration::from_millis(interval.max(1));
        }
        if let Some(days) = self.max_history_days.or(file.max_history_days) {
            engine.expiry.max_history_days = days;
        }
        let jwt_secret = self.jwt_secret.or_else(|| file.jwt_secret.clone());
        engine.portal.jwt_secret = jwt_secret.and_then(cashgrid_actors::engine::portal::JwtSecret::new);
        if let Some(hours) = self.jwt_valid_hours.or(file.jwt_valid_hours) {
            engine.portal.jwt_valid_hours = hours.max(1);
        }
        engine.portal.captcha_off = self.captcha_off.or(file.captcha_off).unwrap_or(false);
        engine.mqtt = mqtt_config(
            self.mqtt_url.or_else(|| file.mqtt_url.clone()),
            self.mqtt_user.or_else(|| file.mqtt_user.clone()),
            self.mqtt_password.or_else(|| file.mqtt_password.clone()),
            self.mqtt_signature_key,
            self.mqtt_signature_key_file.or_else(|| file.mqtt_signature_key_file.clone()),
        )?;
        let tls = match (self.tls_cert.or_else(|| file.tls_cert.clone()), self.tls_key.or_else(|| file.tls_key.clone())) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) | (None, Some(_)) => anyhow::bail!("HTTPS needs both --tls-cert and --tls-key"),
        };
        let trusted_proxies = match (self.trusted_proxies.as_ref(), &file.trusted_proxies) {
            (Some(text), _) | (None, Some(ProxyList::Text(text))) => TrustedProxies::parse(text)?,
            (None, Some(ProxyList::List(entries))) => TrustedProxies::from_entries(entries.iter().map(String::as_str))?,
            (None, None) => TrustedProxies::default(),
        };
        Ok(ServeSettings {
            bind,
            tls,
            trusted_proxies,
            error_status,
            workers: self.workers.or(file.workers).unwrap_or(cores).max(1),
            body_timeout: Duration::from_millis(
                self.body_timeout_ms.or(file.body_timeout_ms).unwrap_or(DEFAULT_BODY_TIMEOUT_MS).max(1),
            ),
            max_connections: self.max_connections.or(file.max_connections).unwrap_or(DEFAULT_MAX_CONNECTIONS).max(1),
            engine,
            store,
        })
    }
}

/// MQTT pushes when a broker URL is given: the URL must name a plain TCP broker and a signing
/// key must be given (there is no built-in one). Without a URL, MQTT is off.
fn mqtt_config(
    url: Option<String>,
    user: Option<String>,
    password: Option<String>,
    key_text: Option<String>,
    key_file: Option<PathBuf>,
) -> anyhow::Result<Option<MqttConfig>> {
    let Some(url) = url.filter(|url| !url.trim().is_empty()) else { return Ok(None) };
    let broker = Broker::parse(&url)?;
    let key_text = match (key_text.filter(|text| !text.trim().is_empty()), key_file) {
        (Some(text), _) => text,
        (None, Some(path)) => {
            std::fs::read_to_string(&path).with_context(|| format!("reading the MQTT signing key {}", path.display()))?
        }
        (None, None) => anyhow::bail!(
            "MQTT_URL is set but no signing key is: give MQTT_SIGNATURE_KEY or --mqtt-signature-key-file \
             (cashgrid has no built-in key)"
        ),
    };
    let signing_key = RsaSigningKey::from_pem(&key_text).context("the MQTT signing key")?;
    Ok(Some(MqttConfig {
        broker,
        user: user.filter(|user| !user.is_empty()),
        password,
        signing_key: Arc::new(signing_key),
        render: cashgrid_http::dncash::trigger_push_json,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = include_str!("../tests/fixtures/keys/phone_c_2048.private.pem");

    #[test]
    fn mqtt_is_off_without_a_url_and_refuses_to_start_without_a_key_or_with_a_tls_url() {
        assert!(matches!(mqtt_config(None, None, None, Some(KEY.into()), None), Ok(None)));
        let missing_key = mqtt_config(Some("mqtt://127.0.0.1".into()), None, None, None, None);
        assert!(missing_key.is_err_and(|error| error.to_string().contains("no built-in key")));
        let tls = mqtt_config(Some("mqtts://127.0.0.1".into()), None, None, Some(KEY.into()), None);
        assert!(tls.is_err());
        let bad_key = mqtt_config(Some("mqtt://127.0.0.1".into()), None, None, Some("not a key".into()), None);
        assert!(bad_key.is_err());
        let configured = mqtt_config(Some("mqtt://127.0.0.1:1884".into()), Some("u".into()), Some("p".into()), Some(KEY.into()), None);
        match configured {
            Ok(Some(config)) => {
                assert_eq!(config.broker, Broker { host: "127.0.0.1".into(), port: 1884 });
                assert!(!format!("{config:?}").contains("\"p\""), "the password is not printed");
            }
            other => panic!("expected a configuration, got {other:?}"),
        }
    }
}
