//! Durable storage behind one trait: PostgreSQL for production, SQLite embedded by default.
//!
//! Token snapshots and their events are written only through [`Store::commit`], which the
//! batching writer (`crate::writer`) calls with the write sets of many actors at once. Every
//! token write is version-fenced: it applies only over the version the actor last saw.

use async_trait::async_trait;
use serde_json::Value;
use uuid::Uuid;

use crate::domain::{CustomerId, Device, Token, TokenEvent, TokenState};

mod postgres;
mod rows;
mod sqlite;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Longest token or device list one request may read.
pub const LIST_LIMIT_MAX: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or refused the connection: answer 503.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A unique constraint (email, apikey, device uuid) already holds this value.
    #[error("duplicate {0}")]
    Duplicate(&'static str),
    /// Anything else: a bug or a corrupt row. Answer an opaque 500 and log it.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// One token write of a write set.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenWrite {
    /// A new token. Fails the set (`Conflict`) if the uuid or an active plain code is taken.
    Insert(Token),
    /// A successor snapshot; applies only where the stored version is `token.version - 1`.
    Update(Token),
}

impl TokenWrite {
    pub fn token(&self) -> &Token {
        match self {
            Self::Insert(token) | Self::Update(token) => token,
        }
    }
}

/// What one actor commits atomically: token writes and the events they produced.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteSet {
    pub writes: Vec<TokenWrite>,
    pub events: Vec<TokenEvent>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Committed,
    /// The first write did not apply (version fence or unique conflict); nothing of the set was
    /// written. The actor reloads (update) or retries with fresh codes (insert).
    Conflict,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    pub id: CustomerId,
    pub created: i64,
    pub email: String,
    pub display_name: Option<String>,
    /// Comma-separated, as the original stores them, e.g. `user,admin`.
    pub roles: String,
    pub status: i32,
    pub info: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCustomer {
    pub email: String,
    pub display_name: Option<String>,
    pub roles: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    TokenApi,
    CashApi,
    ClearingApi,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TokenApi => "token-api",
            Self::CashApi => "cash-api",
            Self::ClearingApi => "clearing-api",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "token-api" => Some(Self::TokenApi),
            "cash-api" => Some(Self::CashApi),
            "clearing-api" => Some(Self::ClearingApi),
            _ => None,
        }
    }
}

/// API credentials. The secret itself is never stored: only its keyed hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub id: i64,
    pub customer_id: CustomerId,
    pub created: i64,
    pub scope: Scope,
    pub apikey: String,
    pub secret_hash: Vec<u8>,
}

/// Equality filters of the Token API list (`GET /tokens`). All `None` lists every owned token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenFilter {
    pub state: Option<TokenState>,
    pub clearstate: Option<i64>,
    pub uuid: Option<Uuid>,
    pub device: Option<Uuid>,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Commit many write sets in one transaction; one outcome per set, in order.
    /// An `Err` means nothing was committed.
    async fn commit(&self, sets: &[WriteSet]) -> Result<Vec<WriteOutcome>, StoreError>;

    async fn load_token(&self, uuid: Uuid) -> Result<Option<Token>, StoreError>;
    /// The OPEN or LOCKED token holding this plain code, if any.
    async fn find_token_by_plain_code(&self, plain_code: &str) -> Result<Option<Uuid>, StoreError>;
    /// Tokens of `owner` matching `filter`, in issue order, with their device's uuid.
    async fn list_tokens(
        &self,
        owner: CustomerId,
        filter: &TokenFilter,
        limit: usize,
    ) -> Result<Vec<Token>, StoreError>;

    /// Insert a device; the store assigns `id` and returns the stored row.
    async fn insert_device(&self, device: &Device) -> Result<Device, StoreError>;
    async fn load_device(&self, uuid: Uuid) -> Result<Option<Device>, StoreError>;
    async fn list_devices(&self, customer: CustomerId, limit: usize) -> Result<Vec<Device>, StoreError>;

    async fn create_customer(&self, customer: &NewCustomer) -> Result<Customer, StoreError>;
    async fn load_customer(&self, id: CustomerId) -> Result<Option<Customer>, StoreError>;
    async fn find_customer_by_email(&self, email: &str) -> Result<Option<Customer>, StoreError>;

    async fn create_access(
        &self,
        customer: CustomerId,
        scope: Scope,
        apikey: &str,
        secret_hash: &[u8],
    ) -> Result<Access, StoreError>;
    async fn find_access(&self, apikey: &str) -> Result<Option<Access>, StoreError>;

    /// A customer parameter's JSON value (USE_PLAIN_CODES, PARTIAL_CASHOUTS, ...).
    async fn load_param(&self, customer: CustomerId, key: &str) -> Result<Option<Value>, StoreError>;
    async fn save_param(&self, customer: CustomerId, key: &str, value: &Value) -> Result<(), StoreError>;

    /// Cheap liveness probe for `/health`.
    async fn ping(&self) -> Result<(), StoreError>;
}
