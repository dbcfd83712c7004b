//! The engine: a small bundle of per-domain services that the frontends call — tokens,
//! devices, access (API keys, listen keys, parameters), triggers, feeds, clearing and the
//! portal. Each owns its registry, caches and rules; they share the entity actors' context.
//! It knows nothing of HTTP.

mod access;
pub mod ccc;
pub mod clearing;
pub mod customers;
mod devices;
mod feed;
mod gauges;
pub mod idempotency;
pub mod ledger;
pub mod portal;
mod tokens;
pub mod trigger;

use std::sync::Arc;
use std::time::Duration;

use actix::Arbiter;
use uuid::Uuid;

pub use access::AccessService;
pub use ccc::CccService;
pub use clearing::ClearingService;
pub use devices::{DeviceService, NewDevice};
pub use feed::FeedService;
pub use ledger::LedgerService;
pub use portal::PortalService;
pub use tokens::{Confirmation, NewToken, TokenService};
pub use trigger::TriggerService;

use crate::context::EntityContext;
use crate::crypto::{KeyPolicy, SecretHasher};
use crate::entity_actor::Registry;
use crate::expiry::ExpiryConfig;
use crate::feed_hub::{FeedHub, LedgerEntries, TokenEvents, DEFAULT_SUBSCRIBER_BUFFER};
use crate::metrics as m;
pub use crate::outcome::{rejection_reason, EngineError, Rejection};
use crate::store::Store;
use crate::writer::{Writer, WriterConfig};
use idempotency::Idempotency;

/// `/health` answers within a second whatever the store does.
const HEALTH_TIMEOUT: Duration = Duration::from_millis(900);

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
    /// The currencies ledger accounts may hold: ISO 4217 and the configured ones.
    pub currencies: crate::domain::ledger::Currencies,
    /// The Crypto Capital account API's settings.
    pub ccc: ccc::CccConfig,
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
            currencies: crate::domain::ledger::Currencies::default(),
            ccc: ccc::CccConfig::default(),
        }
    }
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
    tokens: TokenService,
    devices: DeviceService,
    access: AccessService,
    triggers: TriggerService,
    feeds: FeedService,
    clearing: ClearingService,
    portal: PortalService,
    ledger: LedgerService,
    ccc: CccService,
    idempotency: Idempotency,
    store: Arc<dyn Store>,
    /// When the tokens-per-state gauge was last refreshed.
    token_counts: Arc<gauges::TokenCountSchedule>,
    /// Kept so the arbiters live as long as the engine.
    _arbiters: Arc<Vec<Arbiter>>,
}

impl Engine {
    /// Start arbiters, the writer, the registries and the services. Must run inside an actix
    /// system.
    pub fn start(store: Arc<dyn Store>, hasher: SecretHasher, config: EngineConfig) -> Self {
        m::register_initial_series();
        let arbiters: Vec<Arbiter> = (0..config.arbiters.max(1)).map(|_| Arbiter::new()).collect();
        let handles: Vec<_> = arbiters.iter().map(Arbiter::handle).collect();
        let writer_arbiter = Arbiter::new();
        let (writer, writer_task) = Writer::new(Arc::clone(&store), config.writer, config.send_timeout);
        writer_arbiter.spawn(writer_task);
        let commits = writer.commits();
        let context = Arc::new(EntityContext {
            store: Arc::clone(&store),
            writer,
            hasher,
            key_policy: config.key_policy,
            currencies: m::CurrencyLabels::default(),
        });
        let customers = Arc::new(customers::Customers::new(Arc::clone(&store), config.send_timeout));
        let idempotency = Idempotency::new(Arc::clone(&store));
        let access = AccessService::new(Arc::clone(&context), Arc::clone(&customers));
        let devices = DeviceService::new(
            Arc::new(Registry::new(Arc::clone(&context), handles.clone())),
            idempotency.clone(),
            config.send_timeout,
        );
        let ledger = LedgerService::new(
            Arc::new(Registry::new(Arc::clone(&context), handles.clone())),
            config.currencies.clone(),
            config.send_timeout,
        );
        let users = Arc::new(Registry::new(Arc::clone(&context), handles.clone()));
        let tokens = TokenService::new(
            Arc::new(Registry::new(Arc::clone(&context), handles)),
            devices.clone(),
            access.clone(),
            idempotency.clone(),
            config.send_timeout,
        );
        // Feeds, expiry and retention share one more thread, off the hot path.
        let background = Arbiter::new();
        let (token_hub, token_hub_task) =
            FeedHub::<TokenEvents>::new(Arc::clone(&store), commits.clone(), config.feed_buffer);
        background.spawn(token_hub_task);
        let (ledger_hub, ledger_hub_task) =
            FeedHub::<LedgerEntries>::new(Arc::clone(&store), commits, config.feed_buffer);
        background.spawn(ledger_hub_task);
        let background_handle = background.handle();
        // MQTT publishing (signing included) runs on the background thread too.
        let mqtt = config.mqtt.clone().map(|mqtt| {
            let (publisher, task) = crate::mqtt::start(mqtt);
            background_handle.spawn(task);
            publisher
        });
        let trigger_arbiter = Arbiter::new();
        let trigger_config = config.triggers.clone();
        let trigger_registry = actix::Supervisor::start_in_arbiter(&trigger_arbiter.handle(), move |_| {
            crate::trigger_actor::TriggerRegistry::new(&trigger_config, mqtt.clone())
        });
        let triggers = TriggerService::new(
            trigger_registry,
            config.triggers.clone(),
            tokens.clone(),
            devices.clone(),
            access.clone(),
            config.send_timeout,
        );
        let feeds = FeedService::new(token_hub, ledger_hub);
        let ccc = CccService::new(
            config.ccc.clone(),
            users,
            ledger.clone(),
            Arc::clone(&customers),
            feeds.clone(),
            config.send_timeout,
        );
        let portal = PortalService::new(context, &config.portal, customers, access.clone(), devices.clone());
        let mut all = arbiters;
        all.push(writer_arbiter);
        all.push(trigger_arbiter);
        all.push(background);
        let engine = Self {
            tokens,
            devices,
            access,
            triggers,
            feeds,
            clearing: ClearingService::new(Arc::clone(&store)),
            portal,
            ledger,
            ccc,
            idempotency,
            store,
            token_counts: Arc::default(),
            _arbiters: Arc::new(all),
        };
        let expiry = config.expiry;
        let (sweeper, retention, keys) = (engine.clone(), engine.clone(), engine.clone());
        background_handle.spawn_fn(move || {
            actix::spawn(crate::expiry::run_expiry(sweeper, expiry));
            actix::spawn(crate::expiry::run_retention(retention, expiry));
            actix::spawn(crate::expiry::run_idempotency_cleanup(keys));
        });
        engine
    }

    /// Issue, claim, confirm, change and read tokens.
    pub fn tokens(&self) -> &TokenService {
        &self.tokens
    }

    /// Register and read devices.
    pub fn devices(&self) -> &DeviceService {
        &self.devices
    }

    /// API keys, listen keys and customer parameters.
    pub fn access(&self) -> &AccessService {
        &self.access
    }

    /// Trigger codes and the claims through them.
    pub fn triggers(&self) -> &TriggerService {
        &self.triggers
    }

    /// Live feeds of committed events.
    pub fn feeds(&self) -> &FeedService {
        &self.feeds
    }

    /// Clearing data for settlement.
    pub fn clearing(&self) -> &ClearingService {
        &self.clearing
    }

    /// Accounts, transfers and holds of the double-entry ledger.
    pub fn ledger(&self) -> &LedgerService {
        &self.ledger
    }

    /// Users and money of the Crypto Capital account API.
    pub fn ccc(&self) -> &CccService {
        &self.ccc
    }

    /// The portal (admin API).
    pub fn portal(&self) -> &PortalService {
        &self.portal
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Whether the store answers, within [`HEALTH_TIMEOUT`].
    pub async fn ping(&self) -> Result<(), EngineError> {
        match tokio::time::timeout(HEALTH_TIMEOUT, self.store.ping()).await {
            Ok(answer) => Ok(answer?),
            Err(_) => Err(EngineError::Unavailable),
        }
    }
}

#[async_trait::async_trait]
impl crate::expiry::Housekeeping for Engine {
    fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    async fn expire(&self, token: Uuid) -> Result<(), EngineError> {
        self.tokens.expire(token).await.map(|_| ())
    }

    async fn forget_idempotency_keys(&self) -> Result<u64, EngineError> {
        self.idempotency.forget_expired().await
    }

    async fn expire_hold(&self, hold: crate::domain::ledger::Transfer) -> Result<bool, EngineError> {
        self.ledger.expire(hold).await
    }
}
