//! Typed settings, layered by `figment`: defaults < configuration file < environment < flags.
//! Every setting `name` is `name` in the file and `CASHGRID_NAME` in the environment; settings
//! the original dncash-io server had keep its environment names too (`DATABASE_URL`,
//! `JWT_SECRET`, ...). Secrets never print. Settings are passed down explicitly; nothing is
//! global.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use cashgrid_actors::crypto::private_key::RsaSigningKey;
use cashgrid_actors::mqtt::{Broker, MqttConfig};
use cashgrid_http::client_origin::TrustedProxies;
use cashgrid_http::ErrorStatus;
use figment::providers::{Format as _, Serialized, Toml};
use figment::Figment;
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

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

/// Every setting after layering: defaults < configuration file < environment < flags. Each is
/// `None` where no layer set it; [`StoreSettings`] and [`ServeSettings`] apply the defaults.
/// Secrets are `SecretString`s: they never print (`Debug` shows `[REDACTED]`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layered {
    bind: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<SecretString>,
    database_pool_size: Option<usize>,
    database_commit_connections: Option<usize>,
    server_key_file: Option<PathBuf>,
    error_status: Option<String>,
    workers: Option<usize>,
    arbiters: Option<usize>,
    send_timeout_ms: Option<u64>,
    store_timeout_ms: Option<u64>,
    body_timeout_ms: Option<u64>,
    max_connections: Option<usize>,
    min_rsa_key_bits: Option<usize>,
    allow_any_rsa_exponent: Option<bool>,
    commit_batch_max: Option<usize>,
    commit_linger_us: Option<u64>,
    fixed_trigger_codes: Option<bool>,
    trigger_wait_ms: Option<u64>,
    feed_buffer: Option<usize>,
    expiry_interval_ms: Option<u64>,
    max_history_days: Option<u32>,
    jwt_secret: Option<SecretString>,
    jwt_valid_hours: Option<u64>,
    captcha_off: Option<bool>,
    mqtt_url: Option<String>,
    mqtt_user: Option<String>,
    mqtt_password: Option<SecretString>,
    mqtt_signature_key: Option<SecretString>,
    mqtt_signature_key_file: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    trusted_proxies: Option<ProxyList>,
    currencies: Option<CurrencyList>,
    ccc_payout_timeout_ms: Option<u64>,
    ccc_iban_country: Option<String>,
    ccc_iban_bank_code: Option<String>,
    ccc_bind: Option<String>,
}

/// Every setting's name: in the file as it is, in the environment as `CASHGRID_<NAME>` in
/// capitals (a unit test keeps this list and [`Layered`] in step).
const SETTINGS: [&str; 38] = [
    "bind",
    "data_dir",
    "database_url",
    "database_pool_size",
    "database_commit_connections",
    "server_key_file",
    "error_status",
    "workers",
    "arbiters",
    "send_timeout_ms",
    "store_timeout_ms",
    "body_timeout_ms",
    "max_connections",
    "min_rsa_key_bits",
    "allow_any_rsa_exponent",
    "commit_batch_max",
    "commit_linger_us",
    "fixed_trigger_codes",
    "trigger_wait_ms",
    "feed_buffer",
    "expiry_interval_ms",
    "max_history_days",
    "jwt_secret",
    "jwt_valid_hours",
    "captcha_off",
    "mqtt_url",
    "mqtt_user",
    "mqtt_password",
    "mqtt_signature_key",
    "mqtt_signature_key_file",
    "tls_cert",
    "tls_key",
    "trusted_proxies",
    "currencies",
    "ccc_payout_timeout_ms",
    "ccc_iban_country",
    "ccc_iban_bank_code",
    "ccc_bind",
];

/// The original dncash-io server's environment names, read too (a `CASHGRID_` name wins).
const ORIGINAL_NAMES: [(&str, &str); 11] = [
    ("DATABASE_URL", "database_url"),
    ("JWT_SECRET", "jwt_secret"),
    ("JWT_VALID_HOURS", "jwt_valid_hours"),
    ("CAPTCHA_OFF", "captcha_off"),
    ("MAX_HISTORY_DAYS", "max_history_days"),
    ("USE_FIXED_TRIGGER_CODES", "fixed_trigger_codes"),
    ("MQTT_URL", "mqtt_url"),
    ("MQTT_USER", "mqtt_user"),
    ("MQTT_PASSWORD", "mqtt_password"),
    ("MQTT_SIGNATURE_KEY", "mqtt_signature_key"),
    ("MQTT_SIGNATURE_KEY_FILE", "mqtt_signature_key_file"),
];

/// `trusted_proxies` in the file: `"10.0.0.0/8, 192.168.1.7"` or `["10.0.0.0/8", "192.168.1.7"]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ProxyList {
    Text(String),
    List(Vec<String>),
}

/// `currencies` beyond ISO 4217's (or with other decimal places): in the file a table
/// `[currencies]` with `BTC = 8`, in the environment `BTC=8,LTC=8`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum CurrencyList {
    Text(String),
    Table(BTreeMap<String, u8>),
}

/// The Crypto Capital API's settings; `Err` for a country and bank code that make no IBAN.
pub fn ccc(layered: &Layered) -> anyhow::Result<cashgrid_actors::engine::ccc::CccConfig> {
    let mut config = cashgrid_actors::engine::ccc::CccConfig::default();
    if let Some(timeout) = layered.ccc_payout_timeout_ms {
        config.payout_timeout = Duration::from_millis(timeout.max(1));
    }
    if let Some(country) = &layered.ccc_iban_country {
        config.iban_country = country.to_ascii_uppercase();
    }
    if let Some(bank_code) = &layered.ccc_iban_bank_code {
        config.iban_bank_code = bank_code.to_ascii_uppercase();
    }
    cashgrid_actors::engine::ccc::assign_iban(&config.iban_country, &config.iban_bank_code, "check", 0).with_context(
        || {
            format!(
                "ccc_iban_country {} with ccc_iban_bank_code {} makes no valid IBAN",
                config.iban_country, config.iban_bank_code
            )
        },
    )?;
    Ok(config)
}

/// The ledger's currency table: ISO 4217 with the configured currencies on top.
pub fn currencies(layered: &Layered) -> anyhow::Result<cashgrid_actors::domain::ledger::Currencies> {
    let table = match &layered.currencies {
        None => BTreeMap::new(),
        Some(CurrencyList::Table(table)) => table.clone(),
        Some(CurrencyList::Text(text)) => text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                let (code, places) =
                    item.split_once('=').with_context(|| format!("currency '{item}': use CODE=PLACES"))?;
                let places =
                    places.trim().parse().with_context(|| format!("currency '{item}': places must be 0 to 18"))?;
                Ok((code.trim().to_owned(), places))
            })
            .collect::<anyhow::Result<_>>()?,
    };
    cashgrid_actors::domain::ledger::Currencies::new(&table).map_err(|error| anyhow::anyhow!("currencies: {error}"))
}

impl Layered {
    /// Layer the settings: the file at `file` (if given), the process environment, then the
    /// flags that were given.
    pub fn load(file: Option<&Path>, flags: &[&dyn ErasedFlags]) -> anyhow::Result<Self> {
        let environment: BTreeMap<String, String> = std::env::vars().collect();
        Self::layer(file, &environment, flags)
    }

    fn layer(
        file: Option<&Path>,
        environment: &BTreeMap<String, String>,
        flags: &[&dyn ErasedFlags],
    ) -> anyhow::Result<Self> {
        let mut figment = Figment::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            figment = figment.merge(Toml::string(&text));
        }
        figment = figment.merge(Serialized::globals(environment_settings(environment)));
        for flags in flags {
            figment = figment.merge(Serialized::globals(flags.given()?));
        }
        // Lossy: the environment and flags are text, read as numbers and booleans (`true`,
        // `yes`, `1`, `on` ...) where a setting is one; text settings keep their text exactly.
        figment.extract_lossy().map_err(|error| anyhow::anyhow!("settings: {error}"))
    }
}

/// The settings the environment gives, by setting name; values are kept as text.
fn environment_settings(environment: &BTreeMap<String, String>) -> BTreeMap<&'static str, String> {
    let mut settings = BTreeMap::new();
    for (name, setting) in ORIGINAL_NAMES {
        if let Some(value) = environment.get(name) {
            settings.insert(setting, value.clone());
        }
    }
    for setting in SETTINGS {
        if let Some(value) = environment.get(&format!("CASHGRID_{}", setting.to_ascii_uppercase())) {
            settings.insert(setting, value.clone());
        }
    }
    settings
}

/// Flags as a layer: only those given (absent ones must not hide the file or environment).
pub trait ErasedFlags {
    fn given(&self) -> anyhow::Result<serde_json::Value>;
}

impl<T: Serialize> ErasedFlags for T {
    fn given(&self) -> anyhow::Result<serde_json::Value> {
        let value = serde_json::to_value(self).context("flags")?;
        Ok(match value {
            serde_json::Value::Object(map) => {
                serde_json::Value::Object(map.into_iter().filter(|(_, value)| !value.is_null()).collect())
            }
            other => other,
        })
    }
}

/// Where the data lives: flags shared by `serve` and the admin commands. Every setting may
/// also come from the environment (`CASHGRID_<NAME>`) or the configuration file.
#[derive(Debug, clap::Args, Serialize)]
pub struct StoreArgs {
    /// Directory of the embedded database and the server key [default: ./data].
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// PostgreSQL URL (also `DATABASE_URL`); without it the embedded SQLite store in the data
    /// directory is used. Prefer the environment: flags are visible to other local users.
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// File holding the server key (Base64) [default: <data-dir>/server.key, created if absent].
    #[arg(long, global = true)]
    server_key_file: Option<PathBuf>,
    /// PostgreSQL connections per process [default: 16].
    #[arg(long, global = true)]
    database_pool_size: Option<usize>,
    /// PostgreSQL connections for group commits, each with one batch in flight [default: 1].
    #[arg(long, global = true)]
    database_commit_connections: Option<usize>,
}

#[derive(Clone)]
pub struct StoreSettings {
    pub data_dir: PathBuf,
    pub database_url: Option<SecretString>,
    pub server_key_file: PathBuf,
    pub pool_size: usize,
    pub commit_connections: usize,
    /// Deadline of every store call and commit (`store_timeout_ms`).
    pub store_timeout: Duration,
}

impl std::fmt::Debug for StoreSettings {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("StoreSettings")
            .field("data_dir", &self.data_dir)
            .field("database_url", &self.database_url.as_ref().map(|_| "[REDACTED]"))
            .field("server_key_file", &self.server_key_file)
            .field("pool_size", &self.pool_size)
            .field("commit_connections", &self.commit_connections)
            .field("store_timeout", &self.store_timeout)
            .finish()
    }
}

impl StoreSettings {
    pub fn resolve(layered: &Layered) -> Self {
        let data_dir = layered.data_dir.clone().unwrap_or_else(|| DEFAULT_DATA_DIR.into());
        let server_key_file = layered.server_key_file.clone().unwrap_or_else(|| data_dir.join(SERVER_KEY_FILE));
        StoreSettings {
            database_url: layered.database_url.clone().filter(|url| !url.expose_secret().is_empty()),
            pool_size: layered.database_pool_size.unwrap_or(DEFAULT_POOL_SIZE),
            commit_connections: layered.database_commit_connections.unwrap_or(DEFAULT_COMMIT_CONNECTIONS),
            store_timeout: Duration::from_millis(layered.store_timeout_ms.unwrap_or(DEFAULT_STORE_TIMEOUT_MS).max(1)),
            data_dir,
            server_key_file,
        }
    }
}

/// `serve`'s flags. Every setting may also come from the environment (`CASHGRID_<NAME>`, and
/// the original's names where it had one) or the configuration file.
#[derive(Debug, clap::Args, Serialize)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080]; port 0 picks a free port.
    #[arg(long)]
    bind: Option<String>,
    /// `original` answers business errors with the original's 500s; `4xx` with client errors.
    #[arg(long)]
    error_status: Option<String>,
    /// HTTP worker threads [default: one per core].
    #[arg(long)]
    workers: Option<usize>,
    /// Threads hosting entity actors [default: one per core].
    #[arg(long)]
    arbiters: Option<usize>,
    /// Every trigger code is its cash device's uuid (also `USE_FIXED_TRIGGER_CODES`).
    #[arg(long, value_parser = clap::builder::BoolishValueParser::new())]
    fixed_trigger_codes: Option<bool>,
    /// Longest a trigger long poll is held before it is answered 204 [default: 120000].
    #[arg(long)]
    trigger_wait_ms: Option<u64>,
    /// Events buffered per live-feed subscriber before it is dropped as too slow [default: 1024].
    #[arg(long)]
    feed_buffer: Option<usize>,
    /// Daily, delete final tokens (with events and clearing rows) older than this many days;
    /// 0 keeps them [default: 90] (also `MAX_HISTORY_DAYS`).
    #[arg(long)]
    max_history_days: Option<u32>,
    /// Portal JWT signing secret [default: a key derived from the server key] (also
    /// `JWT_SECRET`). Prefer the environment or the configuration file: flags are visible to
    /// other local users.
    #[arg(long)]
    jwt_secret: Option<String>,
    /// Deadline of every database call and commit, in ms; a call past it answers 503 (nothing
    /// done) or 504 (outcome unknown) [default: 5000].
    #[arg(long)]
    store_timeout_ms: Option<u64>,
    /// How long a whole request body may take to arrive, in ms; then 408 and the connection is
    /// closed [default: 30000].
    #[arg(long)]
    body_timeout_ms: Option<u64>,
    /// Open client connections kept at most, all workers together; also kept below the
    /// descriptor limit [default: 10000].
    #[arg(long)]
    max_connections: Option<usize>,
    /// Smallest RSA modulus, in bits, of a phone's public key [default: 1024; 2048 is prudent].
    #[arg(long)]
    min_rsa_key_bits: Option<usize>,
    /// Accept phone keys with public exponents other than 65537 [default: false].
    #[arg(long, num_args = 0..=1, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    allow_any_rsa_exponent: Option<bool>,
    /// Lifetime of a portal session in hours [default: 168] (also `JWT_VALID_HOURS`).
    #[arg(long)]
    jwt_valid_hours: Option<u64>,
    /// Allow portal self-registration without a captcha (also `CAPTCHA_OFF`). reCAPTCHA cannot
    /// be verified by this server, so registration is refused unless this is set.
    #[arg(long, num_args = 0..=1, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    captcha_off: Option<bool>,
    /// Publish locked trigger tokens to this MQTT broker (mqtt://host[:port]); off without it
    /// (also `MQTT_URL`).
    #[arg(long)]
    mqtt_url: Option<String>,
    /// MQTT user name (also `MQTT_USER`).
    #[arg(long)]
    mqtt_user: Option<String>,
    /// MQTT password (also `MQTT_PASSWORD`). Prefer the environment or the configuration file.
    #[arg(long)]
    mqtt_password: Option<String>,
    /// RSA private key (PEM, PKCS#1 or PKCS#8; literal \n allowed) that signs MQTT pushes (also
    /// `MQTT_SIGNATURE_KEY`). Prefer the environment or a key file: flags are visible to other
    /// local users.
    #[arg(long)]
    mqtt_signature_key: Option<String>,
    /// File holding the MQTT signing key (PEM), instead of MQTT_SIGNATURE_KEY.
    #[arg(long)]
    mqtt_signature_key_file: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key) instead of plain HTTP.
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// Reverse proxies (IPs or CIDR blocks, comma-separated) whose X-Forwarded-For/-Proto/-Host
    /// headers are believed [default: none].
    #[arg(long)]
    trusted_proxies: Option<String>,
    /// Also serve the Crypto Capital WebSocket API at `/` on this address, for clients that
    /// connect to a host's root as the original's did [default: off; it is always at /ccc/v1].
    #[arg(long)]
    ccc_bind: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub bind: SocketAddr,
    /// The Crypto Capital API's own listener, at its root.
    pub ccc_bind: Option<SocketAddr>,
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

impl ServeSettings {
    pub fn resolve(layered: Layered, store: StoreSettings) -> anyhow::Result<Self> {
        let currencies = currencies(&layered)?;
        let ccc = ccc(&layered)?;
        let bind_text = layered.bind.unwrap_or_else(|| DEFAULT_BIND.into());
        let bind = bind_text.parse().with_context(|| format!("invalid bind address '{bind_text}'"))?;
        let error_text = layered.error_status.unwrap_or_else(|| "original".into());
        let error_status = ErrorStatus::parse(&error_text)
            .with_context(|| format!("invalid error status '{error_text}': use 'original' or '4xx'"))?;
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let mut engine = cashgrid_actors::EngineConfig {
            currencies,
            ccc,
            arbiters: layered.arbiters.unwrap_or(cores).max(1),
            send_timeout: Duration::from_millis(layered.send_timeout_ms.unwrap_or(DEFAULT_SEND_TIMEOUT_MS)),
            ..cashgrid_actors::EngineConfig::default()
        };
        if let Some(bits) = layered.min_rsa_key_bits {
            engine.key_policy.min_bits = bits;
        }
        if let Some(any) = layered.allow_any_rsa_exponent {
            engine.key_policy.any_exponent = any;
        }
        if let Some(batch_max) = layered.commit_batch_max {
            engine.writer.batch_max = batch_max.max(1);
        }
        if let Some(linger) = layered.commit_linger_us {
            engine.writer.linger = Duration::from_micros(linger);
        }
        if let Some(fixed) = layered.fixed_trigger_codes {
            engine.triggers.fixed_codes = fixed;
        }
        if let Some(wait) = layered.trigger_wait_ms {
            engine.triggers.wait_max = Duration::from_millis(wait.max(1));
        }
        if let Some(buffer) = layered.feed_buffer {
            engine.feed_buffer = buffer.max(1);
        }
        if let Some(interval) = layered.expiry_interval_ms {
            engine.expiry.interval = Duration::from_millis(interval.max(1));
        }
        if let Some(days) = layered.max_history_days {
            engine.expiry.max_history_days = days;
        }
        engine.portal.jwt_secret = layered
            .jwt_secret
            .and_then(|secret| cashgrid_actors::engine::portal::JwtSecret::new(secret.expose_secret()));
        if let Some(hours) = layered.jwt_valid_hours {
            engine.portal.jwt_valid_hours = hours.max(1);
        }
        engine.portal.captcha_off = layered.captcha_off.unwrap_or(false);
        engine.mqtt = mqtt_config(
            layered.mqtt_url,
            layered.mqtt_user,
            layered.mqtt_password.map(|password| password.expose_secret().to_owned()),
            layered.mqtt_signature_key.map(|key| key.expose_secret().to_owned()),
            layered.mqtt_signature_key_file,
        )?;
        let tls = match (layered.tls_cert, layered.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) | (None, Some(_)) => {
                anyhow::bail!("HTTPS needs both --tls-cert and --tls-key")
            }
        };
        let trusted_proxies = match &layered.trusted_proxies {
            Some(ProxyList::Text(text)) => TrustedProxies::parse(text)?,
            Some(ProxyList::List(entries)) => TrustedProxies::from_entries(entries.iter().map(String::as_str))?,
            None => TrustedProxies::default(),
        };
        let ccc_bind = layered
            .ccc_bind
            .as_deref()
            .map(|text| text.parse().with_context(|| format!("invalid ccc_bind address '{text}'")))
            .transpose()?;
        Ok(ServeSettings {
            bind,
            ccc_bind,
            tls,
            trusted_proxies,
            error_status,
            workers: layered.workers.unwrap_or(cores).max(1),
            body_timeout: Duration::from_millis(layered.body_timeout_ms.unwrap_or(DEFAULT_BODY_TIMEOUT_MS).max(1)),
            max_connections: layered.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS).max(1),
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
    let Some(url) = url.filter(|url| !url.trim().is_empty()) else {
        return Ok(None);
    };
    let broker = Broker::parse(&url)?;
    let key_text = match (key_text.filter(|text| !text.trim().is_empty()), key_file) {
        (Some(text), _) => text,
        (None, Some(path)) => std::fs::read_to_string(&path)
            .with_context(|| format!("reading the MQTT signing key {}", path.display()))?,
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

    fn environment(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect()
    }

    fn file(text: &str) -> tempfile_path::TempFile {
        tempfile_path::TempFile::with(text)
    }

    /// A file of its own per test, removed afterwards (no tempfile crate for this one use).
    mod tempfile_path {
        pub struct TempFile(pub std::path::PathBuf);

        impl TempFile {
            pub fn with(text: &str) -> Self {
                let path = std::env::temp_dir().join(format!("cashgrid-settings-{}.toml", uuid::Uuid::new_v4()));
                if let Err(error) = std::fs::write(&path, text) {
                    panic!("writing {}: {error}", path.display());
                }
                Self(path)
            }
        }

        impl Drop for TempFile {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[derive(Serialize)]
    struct Flags {
        #[serde(skip_serializing_if = "Option::is_none")]
        bind: Option<String>,
        store_timeout_ms: Option<u64>,
    }

    #[test]
    fn flags_beat_the_environment_which_beats_the_file() {
        let config = file("bind = \"127.0.0.1:1\"\nfeed_buffer = 7\nstore_timeout_ms = 9\n");
        let environment = environment(&[("CASHGRID_BIND", "127.0.0.1:2"), ("CASHGRID_STORE_TIMEOUT_MS", "8")]);
        let flags = Flags { bind: Some("127.0.0.1:3".into()), store_timeout_ms: None };
        let layered =
            Layered::layer(Some(&config.0), &environment, &[&flags]).unwrap_or_else(|error| panic!("{error:#}"));
        assert_eq!(layered.bind.as_deref(), Some("127.0.0.1:3"), "the flag");
        assert_eq!(layered.store_timeout_ms, Some(8), "the environment; an absent flag hides nothing");
        assert_eq!(layered.feed_buffer, Some(7), "the file");
        let none = Layered::layer(None, &BTreeMap::new(), &[]).unwrap_or_else(|error| panic!("{error:#}"));
        assert_eq!(none.bind, None);
    }

    #[test]
    fn the_originals_names_are_read_and_text_stays_text() {
        let environment = environment(&[
            ("DATABASE_URL", "postgres://u:007@h/db"),
            ("JWT_SECRET", "007"),
            ("CAPTCHA_OFF", "yes"),
            ("USE_FIXED_TRIGGER_CODES", "1"),
            ("MAX_HISTORY_DAYS", "30"),
            ("CASHGRID_MAX_HISTORY_DAYS", "31"),
            ("CASHGRID_SERVER_KEY", "not a setting: the key itself"),
            ("CASHGRID_UNRELATED", "ignored"),
        ]);
        let layered = Layered::layer(None, &environment, &[]).unwrap_or_else(|error| panic!("{error:#}"));
        assert_eq!(layered.jwt_secret.as_ref().map(|secret| secret.expose_secret().to_owned()).as_deref(), Some("007"));
        assert_eq!(layered.captcha_off, Some(true));
        assert_eq!(layered.fixed_trigger_codes, Some(true));
        assert_eq!(layered.max_history_days, Some(31), "a CASHGRID_ name wins");
        let printed = format!("{layered:?} {:?}", StoreSettings::resolve(&layered));
        assert!(!printed.contains("007"), "a secret was printed: {printed}");
    }

    #[test]
    fn an_unknown_key_in_the_file_or_a_wrong_value_is_refused() {
        let typo = file("bnd = \"127.0.0.1:1\"\n");
        assert!(Layered::layer(Some(&typo.0), &BTreeMap::new(), &[]).is_err());
        let wrong = environment(&[("CASHGRID_FEED_BUFFER", "many")]);
        assert!(Layered::layer(None, &wrong, &[]).is_err());
    }

    #[test]
    fn every_setting_is_named_and_the_example_file_parses() {
        let example = include_str!("../config/example.toml");
        let layered = Layered::layer(None, &BTreeMap::new(), &[]).map(|_| ());
        assert!(layered.is_ok());
        let config = file(example);
        Layered::layer(Some(&config.0), &BTreeMap::new(), &[])
            .unwrap_or_else(|error| panic!("example.toml: {error:#}"));
        // Every setting named in the example (set or commented out) is in SETTINGS, and every
        // entry of SETTINGS is a setting: the environment may set it.
        for line in example.lines() {
            let line = line.trim_start_matches('#').trim();
            if let Some((name, _)) = line.split_once(" = ") {
                if name.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                    assert!(SETTINGS.contains(&name), "{name} is missing from SETTINGS");
                }
            }
        }
        for setting in SETTINGS {
            let value = if setting == "trusted_proxies" { "127.0.0.1" } else { "1" };
            let environment = environment(&[(&format!("CASHGRID_{}", setting.to_ascii_uppercase()), value)]);
            Layered::layer(None, &environment, &[]).unwrap_or_else(|error| panic!("{setting}: {error:#}"));
        }
    }

    #[test]
    fn currencies_come_from_a_table_in_the_file_or_a_list_in_the_environment() {
        let code =
            |text: &str| cashgrid_actors::domain::ledger::Currency::new(text).unwrap_or_else(|| panic!("{text}"));
        let config = file("[currencies]\nBTC = 8\n");
        let layered =
            Layered::layer(Some(&config.0), &BTreeMap::new(), &[]).unwrap_or_else(|error| panic!("{error:#}"));
        let table = currencies(&layered).unwrap_or_else(|error| panic!("{error:#}"));
        assert_eq!((table.decimals(&code("BTC")), table.decimals(&code("EUR"))), (Some(8), Some(2)));
        let listed = environment(&[("CASHGRID_CURRENCIES", "BTC=8, LTC = 8")]);
        let layered = Layered::layer(None, &listed, &[]).unwrap_or_else(|error| panic!("{error:#}"));
        let table = currencies(&layered).unwrap_or_else(|error| panic!("{error:#}"));
        assert_eq!(table.decimals(&code("BTC")), Some(8));
        assert_eq!(table.decimals(&code("QQQ")), None);
        for wrong in ["BTC", "BTC=x", "btc=8", "BTC=19"] {
            let listed = environment(&[("CASHGRID_CURRENCIES", wrong)]);
            let layered = Layered::layer(None, &listed, &[]).unwrap_or_else(|error| panic!("{error:#}"));
            assert!(currencies(&layered).is_err(), "{wrong}");
        }
    }

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
        let configured = mqtt_config(
            Some("mqtt://127.0.0.1:1884".into()),
            Some("u".into()),
            Some("p".into()),
            Some(KEY.into()),
            None,
        );
        match configured {
            Ok(Some(config)) => {
                assert_eq!(config.broker, Broker { host: "127.0.0.1".into(), port: 1884 });
                assert!(!format!("{config:?}").contains("\"p\""), "the password is not printed");
            }
            other => panic!("expected a configuration, got {other:?}"),
        }
    }
}
