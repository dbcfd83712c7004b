//! The engine facade: what frontends call. It validates against engine state, routes commands
//! to entity actors and reads committed rows for lists. It knows nothing of HTTP.
//!
//! Submodules add the facade's other areas as further `impl Engine` blocks.

pub mod clearing;
pub mod customers;
mod feed;
mod gauges;
pub mod idempotency;
pub mod portal;
pub mod trigger;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Addr, Arbiter};
use serde_json::Value;
use uuid::Uuid;

use crate::clock::now_millis;
use crate::context::EntityContext;
use crate::crypto::{encrypt_code, new_secure_code, random_digits, KeyPolicy, SecretHasher};
use crate::device_actor::{DeviceEntry, DeviceKind, GetDevice};
use crate::domain::params::{self, is_on};
use crate::domain::radiocode::{Radiocode, RadiocodeError};
use crate::domain::token::{ConfirmState, Issue, Token, TokenRejection, TokenType};
use crate::domain::{CustomerId, Device, DeviceType};
use crate::entity_actor::Start;
use crate::expiry::ExpiryConfig;
use crate::feed_hub::{FeedHub, DEFAULT_SUBSCRIBER_BUFFER};
use crate::metrics as m;
pub use crate::outcome::{rejection_reason, EngineError, Rejection};
use crate::registry::Registry;
use crate::store::{Customer, Scope, Store, StoreError, TokenFilter, IDEMPOTENCY_KEY, LIST_LIMIT_MAX};
use crate::token_actor::{TokenChange, TokenKind, TokenRequest};
use crate::writer::{Writer, WriterConfig};
use idempotency::Begin;

/// Attempts at issuing a token with fresh codes before giving up, as the original does.
const ISSUE_ATTEMPTS: usize = 10;
/// How long an authenticated API key is trusted without asking the store again.
const ACCESS_CACHE_TTL: Duration = Duration::from_secs(30);
/// Bound on cached API keys.
const ACCESS_CACHE_MAX: u64 = 100_000;
/// How long a device answered by its actor is reused without asking the actor again. Changes
/// through this engine apply at once (the entry is dropped); the actor itself keeps the row
/// until it passivates, so this adds no staleness for changes made elsewhere.
const DEVICE_CACHE_TTL: Duration = Duration::from_secs(30);
/// Bound on cached devices.
const DEVICE_CACHE_MAX: u64 = 100_000;
/// Token actors in memory beyond which the actor of a newly issued token leaves memory at once
/// (it loads again on its first claim).
const SEEDED_TOKEN_ACTORS_MAX: usize = 50_000;
/// `/health` answers within a second whatever the store does.
const HEALTH_TIMEOUT: Duration = Duration::from_millis(900);
/// How long a customer parameter read is reused. Changes made through this engine apply at
/// once; changes by another node or the CLI within this time.
const PARAM_CACHE_TTL: Duration = Duration::from_secs(2);
/// Bound on cached parameters.
const PARAM_CACHE_MAX: u64 = 100_000;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Arbiters (threads) that host entity actors; one per core by default.
    pub arbiters: usize,
    /// Longest a request waits for an actor's mailbox and answer before 503.
    pub send_timeout: Duration,
    /// What a phone's public key must be.
    pub key_policy: KeyPolicy,
    pub writer: WriterConfig,
    /// Trigger codes: long-poll bound and fixed codes.
    pub triggers: crate::trigger_actor::TriggerConfig,
    /// Events buffered per live-feed subscriber before it is dropped as too slow.
    pub feed_buffer: usize,
    /// Active expiry and history retention.
    pub expiry: ExpiryConfig,
    /// Portal sessions, JWT key and registration.
    pub portal: portal::PortalConfig,
    /// MQTT trigger pushes; off when `None`.
    pub mqtt: Option<crate::mqtt::MqttConfig>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            arbiters: std::thread::available_parallelism().map_or(2, usize::from),
            send_timeout: Duration::from_secs(5),
            key_policy: KeyPolicy::default(),
            writer: WriterConfig::default(),
            triggers: crate::trigger_actor::TriggerConfig::default(),
            feed_buffer: DEFAULT_SUBSCRIBER_BUFFER,
            expiry: ExpiryConfig::default(),
            portal: portal::PortalConfig::default(),
            mqtt: None,
        }
    }
}

/// What the engine's services share: the actors' context and the registries of both kinds.
pub struct Shared {
    pub context: Arc<EntityContext>,
    pub tokens: Arc<Registry<TokenKind>>,
    pub devices: Arc<Registry<DeviceKind>>,
}

impl std::ops::Deref for Shared {
    type Target = EntityContext;

    fn deref(&self) -> &EntityContext {
        &self.context
    }
}

/// A bank's request to issue a token, validated by the frontend.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NewToken {
    pub device: Uuid,
    pub token_type: TokenType,
    pub amount: i64,
    pub symbol: String,
    pub expires: Option<i64>,
    pub refname: Option<String>,
    pub clearstate: i64,
    pub info: Option<Value>,
}

/// A device registration, validated by the frontend.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NewDevice {
    pub device_type: DeviceType,
    pub pubkey: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub refname: Option<String>,
    pub info: Option<String>,
}

/// A cash device's confirmation, validated by the frontend.
#[derive(Debug, Clone, PartialEq)]
pub struct Confirmation {
    /// `None` when the requested state is not one of the five final states.
    pub state: Option<ConfirmState>,
    pub amount: Option<i64>,
    pub lockrefname: Option<String>,
    pub processing_info: Option<Value>,
}

#[derive(Clone)]
struct CachedAccess {
    secret_hash: Vec<u8>,
    scope: Scope,
    customer: Customer,
}

/// A cache whose entries live `ttl` and of which at most `max` are kept.
fn bounded_cache<K, V>(ttl: Duration, max: u64) -> moka::sync::Cache<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    moka::sync::Cache::builder().time_to_live(ttl).max_capacity(max).build()
}

#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
    config: Arc<EngineConfig>,
    access_cache: moka::sync::Cache<String, Arc<CachedAccess>>,
    /// Devices as their actors answered, so the hot paths skip a round trip to another thread.
    device_cache: moka::sync::Cache<Uuid, Arc<DeviceEntry>>,
    param_cache: moka::sync::Cache<(CustomerId, String), Option<Value>>,
    /// Trigger codes, their long polls and device sockets (one actor on its own arbiter).
    triggers: Addr<crate::trigger_actor::TriggerRegistry>,
    /// Live feeds of committed events.
    feeds: FeedHub,
    /// Portal sessions, login brake and sealed TOTP secrets.
    portal: Arc<portal::Portal>,
    /// Logins, API credentials and parameters (shared with the CLI).
    customers: Arc<customers::Customers>,
    /// When the tokens-per-state gauge was last refreshed.
    token_counts: Arc<gauges::TokenCountSchedule>,
    /// Keyed requests this node is deciding now.
    idempotency: Arc<idempotency::InFlight>,
    /// Kept so the arbiters live as long as the engine.
    _arbiters: Arc<Vec<Arbiter>>,
}

impl Engine {
    /// Start arbiters, the writer and the registries. Must run inside an actix system.
    pub fn start(store: Arc<dyn Store>, hasher: SecretHasher, config: EngineConfig) -> Self {
        m::register_initial_series();
        let arbiters: Vec<Arbiter> = (0..config.arbiters.max(1)).map(|_| Arbiter::new()).collect();
        let handles: Vec<_> = arbiters.iter().map(Arbiter::handle).collect();
        let writer_arbiter = Arbiter::new();
        let (writer, writer_task) = Writer::new(Arc::clone(&store), config.writer, config.send_timeout);
        writer_arbiter.spawn(writer_task);
        let portal = Arc::new(portal::Portal::new(&config.portal, &hasher));
        let customers = Arc::new(customers::Customers::new(Arc::clone(&store), config.send_timeout));
        let context = Arc::new(EntityContext {
            store,
            writer,
            hasher,
            key_policy: config.key_policy,
            currencies: m::CurrencyLabels::default(),
        });
        let shared = Arc::new(Shared {
            tokens: Arc::new(Registry::new(Arc::clone(&context), handles.clone())),
            devices: Arc::new(Registry::new(Arc::clone(&context), handles)),
            context,
        });
        // Feeds, expiry and retention share one more thread, off the hot path.
        let background = Arbiter::new();
        let (feeds, hub_task) = FeedHub::new(Arc::clone(&shared.store), shared.writer.commits(), config.feed_buffer);
        background.spawn(hub_task);
        let background_handle = background.handle();
        let expiry = config.expiry;
        // MQTT publishing (signing included) runs on the background thread too.
        let mqtt = config.mqtt.clone().map(|mqtt| {
            let (publisher, task) = crate::mqtt::start(mqtt);
            background_handle.spawn(task);
            publisher
        });
        let trigger_arbiter = Arbiter::new();
        let trigger_config = config.triggers.clone();
        let triggers = actix::Supervisor::start_in_arbiter(&trigger_arbiter.handle(), move |_| {
            crate::trigger_actor::TriggerRegistry::new(&trigger_config, mqtt.clone())
        });
        let mut all = arbiters;
        all.push(writer_arbiter);
        all.push(trigger_arbiter);
        all.push(background);
        let engine = Self {
            shared,
            config: Arc::new(config),
            access_cache: bounded_cache(ACCESS_CACHE_TTL, ACCESS_CACHE_MAX),
            device_cache: bounded_cache(DEVICE_CACHE_TTL, DEVICE_CACHE_MAX),
            param_cache: bounded_cache(PARAM_CACHE_TTL, PARAM_CACHE_MAX),
            triggers,
            feeds,
            portal,
            customers,
            token_counts: Arc::default(),
            idempotency: Arc::default(),
            _arbiters: Arc::new(all),
        };
        let (sweeper, retention, keys) = (engine.clone(), engine.clone(), engine.clone());
        background_handle.spawn_fn(move || {
            actix::spawn(crate::expiry::run_expiry(sweeper, expiry));
            actix::spawn(crate::expiry::run_retention(retention, expiry));
            actix::spawn(crate::expiry::run_idempotency_cleanup(keys));
        });
        engine
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.shared.store
    }

    /// The customer behind an API key and secret of `scope`, or `None` for any mismatch.
    pub async fn authenticate(
        &self,
        apikey: &str,
        secret: &str,
        scope: Scope,
    ) -> Result<Option<Customer>, EngineError> {
        let key = apikey.to_ascii_lowercase();
        let access = match self.access_cache.get(&key) {
            Some(access) => access,
            None => {
                let Some(found) = self.shared.store.find_access(&key).await? else {
                    return Ok(None);
                };
                let Some(customer) = self.shared.store.load_customer(found.customer_id).await? else {
                    return Ok(None);
                };
                let access = Arc::new(CachedAccess { secret_hash: found.secret_hash, scope: found.scope, customer });
                self.access_cache.insert(key, Arc::clone(&access));
                access
            }
        };
        let (secret_hash, found_scope, customer) = (&access.secret_hash, access.scope, access.customer.clone());
        let matches = found_scope == scope && self.shared.hasher.api_secret_matches(secret, secret_hash);
        Ok(matches.then_some(customer))
    }

    /// A customer parameter, read through a short-lived cache: the hot paths (issue, confirm)
    /// would otherwise pay a query each.
    pub async fn param(&self, customer: CustomerId, key: &str) -> Result<Option<Value>, EngineError> {
        let cache_key = (customer, key.to_owned());
        if let Some(value) = self.param_cache.get(&cache_key) {
            return Ok(value);
        }
        let value = self.shared.store.load_param(customer, key).await?;
        self.param_cache.insert(cache_key, value.clone());
        Ok(value)
    }

    /// Set a customer parameter; it applies to this node's next request at once.
    pub async fn save_param(&self, customer: CustomerId, key: &str, value: &Value) -> Result<(), EngineError> {
        self.customers.save_param(customer, key, value).await?;
        self.param_cache.invalidate(&(customer, key.to_owned()));
        Ok(())
    }

    /// Remove a customer parameter (turns a flag off); applies at once on this node.
    pub async fn delete_param(&self, customer: CustomerId, key: &str) -> Result<u64, EngineError> {
        let removed = self.customers.delete_param(customer, key).await?;
        self.param_cache.invalidate(&(customer, key.to_owned()));
        Ok(removed)
    }

    /// Register a device. With an idempotency key, a retry answers the device first registered
    /// under it (see `idempotency`).
    pub async fn register_device(
        &self,
        customer: CustomerId,
        new: NewDevice,
        idempotency: Option<&str>,
    ) -> Result<Device, EngineError> {
        if let Some(pem) = &new.pubkey {
            crate::crypto::parse_public_key(pem, self.shared.key_policy).map_err(Rejection::BadPublicKey)?;
        }
        let keyed = match self.idempotency_begin(customer, idempotency, "device", &new).await? {
            Begin::Replay(device) => return Ok(device),
            Begin::Fresh(keyed) => Some(keyed),
            Begin::Unkeyed => None,
        };
        let key = keyed.as_ref().map(|keyed| &keyed.key);
        let device = Device {
            id: 0,
            uuid: Uuid::new_v4(),
            customer_id: customer,
            created: now_millis(),
            device_type: new.device_type,
            pubkey: new.pubkey,
            lat: new.lat,
            lon: new.lon,
            refname: new.refname,
            info: new.info,
        };
        match (self.shared.store.insert_device(&device, key).await, key) {
            (Err(StoreError::Duplicate(what)), Some(key)) if what == IDEMPOTENCY_KEY => self
                .idempotency_replay(key)
                .await?
                .ok_or_else(|| EngineError::Internal("idempotency key taken but not found".into())),
            (result, _) => Ok(result?),
        }
    }

    /// A device of `customer`, from its actor; `UnknownDevice` for any other.
    pub async fn owned_device(&self, customer: CustomerId, uuid: Uuid) -> Result<Arc<DeviceEntry>, EngineError> {
        match self.device(uuid).await? {
            Some(entry) if entry.device.customer_id == customer => Ok(entry),
            Some(_) | None => Err(Rejection::UnknownDevice.into()),
        }
    }

    async fn device(&self, uuid: Uuid) -> Result<Option<Arc<DeviceEntry>>, EngineError> {
        if let Some(entry) = self.device_cache.get(&uuid) {
            return Ok(Some(entry));
        }
        let found = self.shared.devices.ask(uuid, GetDevice, Start::Load, self.config.send_timeout).await?;
        // Only devices that exist are cached: an unknown uuid may be registered any moment.
        if let Some(entry) = &found {
            self.device_cache.insert(uuid, Arc::clone(entry));
        }
        Ok(found)
    }

    pub async fn list_devices(&self, customer: CustomerId) -> Result<Vec<Device>, EngineError> {
        Ok(self.shared.store.list_devices(customer, LIST_LIMIT_MAX).await?)
    }

    pub async fn find_device(&self, customer: CustomerId, uuid: Uuid) -> Result<Option<Device>, EngineError> {
        Ok(self
            .device(uuid)
            .await?
            .filter(|entry| entry.device.customer_id == customer)
            .map(|entry| entry.device.clone()))
    }

    /// Issue a token for one of the customer's phones; answers once it is committed. With an
    /// idempotency key, a retry answers the token first issued under it, secure code included.
    pub async fn create_token(
        &self,
        customer: CustomerId,
        new: NewToken,
        idempotency: Option<&str>,
    ) -> Result<Token, EngineError> {
        let keyed = match self.idempotency_begin(customer, idempotency, "token", &new).await? {
            Begin::Replay(token) => return Ok(token),
            Begin::Fresh(keyed) => Some(keyed),
            Begin::Unkeyed => None,
        };
        let key = keyed.as_ref().map(|keyed| &keyed.key);
        let device = self.owned_device(customer, new.device).await?;
        let key_of_device = device.key.as_ref().map_err(|error| Rejection::BadPublicKey(error.clone()))?;
        let plain = is_on(self.param(customer, params::USE_PLAIN_CODES).await?.as_ref());
        let deadline = Instant::now() + self.config.send_timeout;
        for _ in 0..ISSUE_ATTEMPTS {
            let uuid = Uuid::new_v4();
            let code = new_secure_code(plain);
            let secure_code = encrypt_code(key_of_device, &code).map_err(Rejection::BadPublicKey)?;
            let issue = Issue {
                uuid,
                owner_id: customer,
                owner_device: new.device,
                token_type: new.token_type,
                amount: new.amount,
                symbol: new.symbol.clone(),
                expires: new.expires,
                refname: new.refname.clone(),
                clearstate: new.clearstate,
                info: new.info.clone(),
                plain_code: plain.then(random_digits),
                secure_code,
                code_hash: self.shared.hasher.code_hash(uuid, &code),
            };
            // The phone claims it soon (at the ATM, often within seconds): its actor stays with
            // the committed snapshot instead of reading it back then. Each costs about 2 kB
            // until it passivates, so beyond a bound the actor leaves at once and the token
            // loads on its first claim, as any other.
            let keep = self.shared.tokens.len() < SEEDED_TOKEN_ACTORS_MAX;
            let request = TokenRequest::Issue { issue, idempotency: key.cloned(), keep };
            let left = deadline.saturating_duration_since(Instant::now());
            match self.shared.tokens.ask(uuid, request, Start::Absent, left).await {
                // A plain code (or, absurdly, a uuid) already in use: draw again. Or the key
                // was taken meanwhile (another node): answer what it created.
                Err(EngineError::Rejected(Rejection::TokenNotCreated)) => {
                    if let Some(key) = key {
                        if let Some(token) = self.idempotency_replay(key).await? {
                            return Ok(token);
                        }
                    }
                }
                answer => return answer,
            }
        }
        Err(Rejection::TokenNotCreated.into())
    }

    /// Verify and lock a token for a cash device of `cash_customer`.
    pub async fn claim(
        &self,
        cash_customer: CustomerId,
        cash_device: Uuid,
        radiocode: &str,
    ) -> Result<Token, EngineError> {
        self.owned_device(cash_customer, cash_device).await?;
        let (token, code) = match Radiocode::parse(radiocode) {
            Ok(Radiocode::Long { token, code }) => (token, code),
            Ok(Radiocode::Short { plain_code, code }) => {
                match self.shared.store.find_token_by_plain_code(&plain_code).await? {
                    Some(token) => (token, code),
                    None => return Err(Rejection::UnknownToken.into()),
                }
            }
            Err(RadiocodeError::Empty) => return Err(Rejection::IllegalRadiocode.into()),
            Err(RadiocodeError::UnknownToken(_)) => return Err(Rejection::UnknownToken.into()),
        };
        self.ask_token(token, TokenChange::Claim { cash_device, cash_customer, code }).await
    }

    /// Finish a token that `cash_device` locked.
    pub async fn confirm(
        &self,
        cash_customer: CustomerId,
        cash_device: Uuid,
        token: Uuid,
        confirmation: Confirmation,
    ) -> Result<Token, EngineError> {
        let partial_cashouts = is_on(self.param(cash_customer, params::PARTIAL_CASHOUTS).await?.as_ref());
        self.owned_device(cash_customer, cash_device).await?;
        let request = TokenChange::Confirm {
            cash_device,
            cash_customer,
            state: confirmation.state,
            amount: confirmation.amount,
            lockrefname: confirmation.lockrefname,
            processing_info: confirmation.processing_info,
            partial_cashouts,
        };
        self.ask_token(token, request).await
    }

    pub async fn update_token(
        &self,
        owner: CustomerId,
        token: Uuid,
        clearstate: Option<i64>,
        info: Option<Value>,
    ) -> Result<Token, EngineError> {
        let request = TokenChange::Update { caller: owner, clearstate, info };
        self.ask_token(token, request).await.map_err(unknown_token_is_not_found)
    }

    pub async fn delete_token(&self, owner: CustomerId, token: Uuid, device: Uuid) -> Result<Token, EngineError> {
        let request = TokenChange::Delete { caller: owner, device };
        self.ask_token(token, request).await.map_err(unknown_token_is_not_found)
    }

    /// A committed token of `owner`, read from the store.
    pub async fn find_token(&self, owner: CustomerId, token: Uuid) -> Result<Option<Token>, EngineError> {
        Ok(self.shared.store.load_token(token).await?.filter(|token| token.owner_id == owner))
    }

    pub async fn list_tokens(&self, owner: CustomerId, filter: &TokenFilter) -> Result<Vec<Token>, EngineError> {
        Ok(self.shared.store.list_tokens(owner, filter, LIST_LIMIT_MAX).await?)
    }

    /// Ask a token's actor for a change (see `Registry::ask`).
    async fn ask_token(&self, token: Uuid, change: TokenChange) -> Result<Token, EngineError> {
        self.shared.tokens.ask(token, TokenRequest::Change(change), Start::Load, self.config.send_timeout).await
    }

    /// Whether the store answers, within [`HEALTH_TIMEOUT`].
    pub async fn ping(&self) -> Result<(), EngineError> {
        match tokio::time::timeout(HEALTH_TIMEOUT, self.shared.store.ping()).await {
            Ok(answer) => Ok(answer?),
            Err(_) => Err(EngineError::Unavailable),
        }
    }
}

fn unknown_token_is_not_found(error: EngineError) -> EngineError {
    match error {
        EngineError::Rejected(Rejection::UnknownToken) => {
            EngineError::Rejected(Rejection::Token(TokenRejection::NotFound))
        }
        other => other,
    }
}
