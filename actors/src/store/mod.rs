//! Durable storage behind one trait: PostgreSQL for production, SQLite embedded by default.
//!
//! Token snapshots and their events are written only through [`Store::commit`], which the
//! batching writer (`crate::writer`) calls with the write sets of many actors at once. Every
//! token write is version-fenced: it applies only over the version the actor last saw.

use async_trait::async_trait;
use serde_json::Value;
use uuid::Uuid;

use crate::domain::ledger::{Account as LedgerAccount, AccountId, Owner, Transfer, TransferId};
use crate::domain::{CustomerId, Device, Millis, Token, TokenEvent, TokenState};

mod decode;
mod entities;
mod ledger;
mod postgres;
mod postgres_db;
mod queries;
mod rows;
mod sql;
mod sqlite;
mod sqlite_db;

pub use ledger::{AccountTransfer, EntryRange, EntryWrite, LedgerEntry, LedgerWrite, Side};
pub use postgres::PostgresStore;
pub use queries::Inspection;
pub use sql::DEFAULT_DEADLINE;
pub use sqlite::SqliteStore;

/// Longest token or device list one request may read.
pub const LIST_LIMIT_MAX: usize = 10_000;
/// What `StoreError::Duplicate` names when an idempotency key is already taken.
pub const IDEMPOTENCY_KEY: &str = "idempotency key";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or refused the connection: answer 503.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A unique constraint (email, apikey, device uuid) already holds this value.
    #[error("duplicate {0}")]
    Duplicate(&'static str),
    /// Other rows still reference this one (a device with tokens, a customer with devices).
    #[error("still referenced: {0}")]
    Referenced(&'static str),
    /// A write was sent but no answer came before its deadline (or the connection broke while
    /// the transaction committed): it may or may not have taken effect. Never answered as
    /// "not done"; the caller reports the outcome as unknown.
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
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

/// What one actor commits atomically: token writes, the events they produced, the clearing
/// row a COMPLETED cash-out or cash-in creates, the idempotency key of the request that
/// created it, and changes of entities in the generic tables (each fenced by version, with
/// its events). Nothing of a set is written unless all of its writes apply.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteSet {
    pub writes: Vec<TokenWrite>,
    /// Each event row also stores the public snapshot of its token as written in this set
    /// (`Token::snapshot_json`), so feeds and the journal need no second read.
    pub events: Vec<TokenEvent>,
    pub clearing: Option<ClearingWrite>,
    /// Written with the set, or the set conflicts when the key is already taken.
    pub idempotency: Option<IdempotencyRecord>,
    /// Entities of the generic tables: the set conflicts when one does not apply.
    pub entities: Vec<EntityCommit>,
    /// Accounts, transfers and entries of the ledger: the set conflicts when a part does not
    /// apply (`LedgerWrite`).
    pub ledger: LedgerWrite,
}

/// A client's `Idempotency-Key` with the request it came with, scoped to the customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub customer_id: CustomerId,
    pub key: String,
    /// A digest of the request (its kind and validated fields): the same key with another
    /// request is refused.
    pub fingerprint: String,
    pub created: i64,
}

/// An idempotency key stored in the commit of what its request created, so that a retry on
/// any node finds the original result. A key already taken makes the write that carries it a
/// conflict: nothing of it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub key: IdempotencyKey,
    /// The original result as JSON text (the created entity as it was answered).
    pub result: String,
}

/// A clearing row: the store snapshots each party's default account (or NULL) at commit time,
/// inside the same transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClearingWrite {
    pub token: Uuid,
    pub debitor_id: CustomerId,
    pub creditor_id: CustomerId,
    pub created: i64,
}

/// An entity of a kind in the generic `entities` table, as stored: its snapshot as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEntity {
    pub id: String,
    pub version: i64,
    pub state: Value,
}

/// One change of an entity in the generic tables, committed with its write set: its successor
/// snapshot (version 1 inserts it, unless the id is taken; any other applies only over
/// `version - 1`) and the events that recorded the change.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityCommit {
    /// `Entity::KIND`.
    pub kind: &'static str,
    pub id: String,
    pub version: i64,
    pub state: Value,
    /// The values the entity is found by (`Entity::index_columns`), by name.
    pub lookup: Vec<(&'static str, String)>,
    pub at: i64,
    pub events: Vec<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Committed,
    /// A write did not apply (version fence, unique conflict, or a taken idempotency key);
    /// nothing of the set was written. The actor reloads (update) or retries with fresh codes
    /// (insert).
    Conflict,
    /// The database refused a value of this set (a bug: the edge validates what the store
    /// cannot hold); nothing of it was written, and the other sets of its batch are unaffected.
    Refused,
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
    /// The Ledger API for a customer's own accounts.
    LedgerApi,
    /// The Ledger API for every account: float, escrow, external rails and fees included.
    LedgerOperator,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TokenApi => "token-api",
            Self::CashApi => "cash-api",
            Self::ClearingApi => "clearing-api",
            Self::LedgerApi => "ledger-api",
            Self::LedgerOperator => "ledger-operator",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "token-api" => Some(Self::TokenApi),
            "cash-api" => Some(Self::CashApi),
            "clearing-api" => Some(Self::ClearingApi),
            "ledger-api" => Some(Self::LedgerApi),
            "ledger-operator" => Some(Self::LedgerOperator),
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

/// How busy one of a store's connection pools is, for the pool gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    /// PostgreSQL: `query` (reads, admin writes) or `commit` (group commits). SQLite: `read`
    /// (the read connections) or `write` (its one writer connection).
    pub pool: &'static str,
    /// Most connections the pool opens.
    pub max: usize,
    /// Connections open now (in use or idle).
    pub open: usize,
    /// Connections lent out now.
    pub in_use: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Commit many write sets in one transaction; one outcome per set, in order.
    /// An `Err` means nothing was committed.
    async fn commit(&self, sets: &[WriteSet]) -> Result<Vec<WriteOutcome>, StoreError>;
    /// How many `commit` calls may usefully run at once (each on its own connection). The
    /// writer keeps at most this many batches in flight; the version fence keeps them correct,
    /// because one entity never has two write sets in flight.
    fn commit_slots(&self) -> usize {
        1
    }
    /// Connection pool usage now; cheap (no I/O).
    fn pool_usage(&self) -> Vec<PoolUsage>;

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

    /// Insert a device; the store assigns `id` and returns the stored row. With an idempotency
    /// key, the key is stored in the same transaction with the stored row (as JSON) as its
    /// result; a key already taken inserts nothing and answers `Duplicate(IDEMPOTENCY_KEY)`.
    async fn insert_device(&self, device: &Device, idempotency: Option<&IdempotencyKey>) -> Result<Device, StoreError>;
    /// The stored idempotency key of a customer, if any.
    async fn find_idempotency(&self, customer: CustomerId, key: &str) -> Result<Option<IdempotencyRecord>, StoreError>;
    /// Forget idempotency keys stored before `before`; the number removed.
    async fn delete_idempotency_before(&self, before: i64) -> Result<u64, StoreError>;
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

    // --- Portal, accounts, clearing, feeds, expiry. ---

    async fn delete_param(&self, customer: CustomerId, key: &str) -> Result<u64, StoreError>;
    /// Login material of a customer (case-insensitive email).
    async fn find_credentials(&self, email: &str) -> Result<Option<Credentials>, StoreError>;
    /// Create a portal user with a password hash (argon2id PHC string).
    async fn create_user(&self, user: &NewCustomer, password_hash: &str, status: i32) -> Result<Customer, StoreError>;
    async fn set_password(&self, customer: CustomerId, password_hash: &str, status: i32) -> Result<(), StoreError>;
    /// Store (or clear) the encrypted TOTP secret.
    async fn set_twofa_secret(&self, customer: CustomerId, secret: Option<&[u8]>) -> Result<(), StoreError>;
    async fn list_customers(&self) -> Result<Vec<Customer>, StoreError>;
    /// Overwrite display_name, roles and info of the customer with this email; rows matched.
    async fn update_customer(&self, email: &str, update: &CustomerUpdate) -> Result<u64, StoreError>;
    /// Rows deleted; `StoreError::Referenced` when other rows still point at the customer.
    async fn delete_customer(&self, email: &str) -> Result<u64, StoreError>;
    /// Store the API secret encrypted under the server key, so its owner can reveal it.
    async fn set_access_secret_encrypted(&self, access: i64, encrypted: &[u8]) -> Result<(), StoreError>;
    async fn load_access(&self, id: i64) -> Result<Option<AccessRecord>, StoreError>;
    async fn list_access(&self, customer: CustomerId, scope: Scope) -> Result<Vec<AccessRecord>, StoreError>;
    /// Rows deleted (only the customer's own).
    async fn delete_access(&self, customer: CustomerId, id: i64) -> Result<u64, StoreError>;
    async fn load_device_by_id(&self, id: i64) -> Result<Option<Device>, StoreError>;
    /// Change type and/or refname of the customer's device; rows matched.
    async fn update_device(
        &self,
        customer: CustomerId,
        id: i64,
        device_type: Option<crate::domain::DeviceType>,
        refname: Option<Option<String>>,
    ) -> Result<u64, StoreError>;
    /// Rows deleted; `StoreError::Referenced` when tokens still reference the device.
    async fn delete_device(&self, customer: CustomerId, id: i64) -> Result<u64, StoreError>;
    /// Admin view: one row per device with its customer's email.
    async fn device_stats(&self) -> Result<Vec<DeviceStat>, StoreError>;
    /// Insert an account, then apply the default rule (exactly one default per customer: the
    /// lowest id when there are zero or several). All in one transaction.
    async fn insert_account(&self, customer: CustomerId, account: &NewAccount) -> Result<Account, StoreError>;
    async fn list_accounts(&self, customer: CustomerId, default: Option<bool>) -> Result<Vec<Account>, StoreError>;
    async fn load_account(&self, id: i64) -> Result<Option<Account>, StoreError>;
    /// Replace the account's fields; `make_default` first clears the customer's other
    /// defaults; then the default rule. Rows matched.
    async fn update_account(
        &self,
        customer: CustomerId,
        account: &Account,
        make_default: bool,
    ) -> Result<u64, StoreError>;
    async fn delete_account(&self, customer: CustomerId, id: i64) -> Result<u64, StoreError>;
    /// Sums and counts by (state, type) over tokens owned by `customer` or locked by one of its
    /// devices; every token when `None` (admin).
    async fn token_stats(&self, customer: Option<CustomerId>) -> Result<Vec<TokenStat>, StoreError>;
    /// Events as journal rows, newest first (see `JournalQuery`).
    async fn journal(&self, query: &JournalQuery) -> Result<Vec<JournalEntry>, StoreError>;
    /// Clearing rows with their token and device names, in clearing order.
    async fn clearing_rows(&self, query: &ClearingQuery) -> Result<Vec<ClearingRow>, StoreError>;
    /// Sums by (type, symbol, debitor, creditor) over the same selection as `clearing_rows`.
    async fn clearing_sums(&self, query: &ClearingQuery) -> Result<Vec<ClearingSum>, StoreError>;
    /// Events after `after_seq` in sequence order, at most `limit`; `customer` filters to
    /// events whose owner or cash customer it is (`None`: all, for admins).
    async fn events_after(
        &self,
        customer: Option<CustomerId>,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError>;
    /// The highest event sequence number committed so far (0 when none).
    async fn last_event_seq(&self) -> Result<i64, StoreError>;
    /// OPEN tokens whose `expires` is before `now`, oldest expiry first, at most `limit`.
    async fn due_expiries(&self, now: i64, limit: usize) -> Result<Vec<Uuid>, StoreError>;
    /// Delete tokens in a final state, their events and clearing rows, created before
    /// `before`; returns the number of tokens removed.
    async fn delete_history(&self, before: i64) -> Result<u64, StoreError>;

    /// An entity of `kind` in the generic tables.
    async fn load_entity(&self, kind: &'static str, id: &str) -> Result<Option<StoredEntity>, StoreError>;
    /// Entities of `kind` whose lookup value `column` is `value`, by id, at most `limit` (and
    /// never more than [`LIST_LIMIT_MAX`]).
    /// `column` must be a plain name (`domain::entity::is_plain_name`).
    async fn find_entities(
        &self,
        kind: &'static str,
        column: &'static str,
        value: &str,
        limit: usize,
    ) -> Result<Vec<StoredEntity>, StoreError>;
    /// The events of one entity in the generic tables, oldest first, at most `limit` (and never
    /// more than [`LIST_LIMIT_MAX`]).
    async fn entity_events(&self, kind: &'static str, id: &str, limit: usize) -> Result<Vec<Value>, StoreError>;

    // The ledger (written only through `commit`).
    async fn load_ledger_account(&self, id: AccountId) -> Result<Option<LedgerAccount>, StoreError>;
    /// A customer's accounts by id, after `after`, at most `limit` (and never more than
    /// [`LIST_LIMIT_MAX`]).
    async fn ledger_accounts_of_customer(
        &self,
        customer: CustomerId,
        after: Option<AccountId>,
        limit: usize,
    ) -> Result<Vec<LedgerAccount>, StoreError>;
    /// An owner's accounts by id, after `after`, at most `limit` (and never more than
    /// [`LIST_LIMIT_MAX`]).
    async fn ledger_accounts_of_owner(
        &self,
        owner: &Owner,
        after: Option<AccountId>,
        limit: usize,
    ) -> Result<Vec<LedgerAccount>, StoreError>;
    async fn load_ledger_transfer(&self, id: TransferId) -> Result<Option<Transfer>, StoreError>;
    /// The transfers of these ids that exist (a batch's ids, read in a few queries).
    async fn load_ledger_transfers(&self, ids: &[TransferId]) -> Result<Vec<Transfer>, StoreError>;
    /// Holds still pending whose time-out is at or before `now`, soonest first.
    async fn due_ledger_holds(&self, now: Millis, limit: usize) -> Result<Vec<Transfer>, StoreError>;
    /// An account's journal lines in `range`, oldest first.
    async fn ledger_account_entries(
        &self,
        account: AccountId,
        range: EntryRange,
    ) -> Result<Vec<LedgerEntry>, StoreError>;
    /// The account's last journal line before `at` (its sums as they stood then).
    async fn ledger_entry_before(&self, account: AccountId, at: Millis) -> Result<Option<LedgerEntry>, StoreError>;
    /// The transfers in an account's journal lines of `range`, in the journal's order.
    async fn ledger_account_transfers(
        &self,
        account: AccountId,
        range: EntryRange,
    ) -> Result<Vec<AccountTransfer>, StoreError>;
    /// The transfers of an account's newest journal lines, newest first, at most `limit` (and
    /// never more than [`LIST_LIMIT_MAX`]).
    async fn ledger_account_latest_transfers(
        &self,
        account: AccountId,
        limit: usize,
    ) -> Result<Vec<AccountTransfer>, StoreError>;
    /// The journal lines after sequence number `after_seq`, in order: of one customer's
    /// accounts, or (`None`) of all.
    async fn ledger_entries_after(
        &self,
        customer: Option<CustomerId>,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<LedgerEntry>, StoreError>;
    /// The highest journal sequence number (0 when none).
    async fn last_ledger_entry_seq(&self) -> Result<i64, StoreError>;
    /// How many holds are pending.
    async fn pending_ledger_holds(&self) -> Result<i64, StoreError>;
}

/// A customer with the secrets only login needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub customer: Customer,
    /// argon2id PHC string; `None` for customers created without a password (CLI).
    pub password_hash: Option<String>,
    /// TOTP secret, encrypted under the server key.
    pub twofa_secret: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerUpdate {
    pub display_name: Option<String>,
    pub roles: Option<String>,
    /// Raw JSON text, stored and echoed as text as the original does.
    pub info: Option<String>,
}

/// API credentials with the encrypted secret, for listing and revealing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRecord {
    pub access: Access,
    pub secret_encrypted: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceStat {
    pub email: String,
    pub device_type: crate::domain::DeviceType,
    pub refname: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccount {
    pub value: String,
    /// BANKACCOUNT, CREDITCARD or CRYPTOWALLET.
    pub account_type: String,
    pub default: bool,
    pub symbol: Option<String>,
    pub refname: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Account {
    pub id: i64,
    pub customer_id: CustomerId,
    pub value: String,
    #[serde(rename = "type")]
    pub account_type: String,
    /// 0 or 1 on the wire, as MySQL booleans were.
    pub default: i32,
    pub symbol: Option<String>,
    pub refname: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenStat {
    pub state: TokenState,
    pub token_type: crate::domain::TokenType,
    /// Exact: a sum of many amounts may exceed 64 bits.
    pub amount: i128,
    pub count: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalQuery {
    /// `None`: every customer's entries (admin).
    pub customer: Option<CustomerId>,
    /// Epoch ms, inclusive.
    pub from: Option<i64>,
    /// Epoch ms, exclusive.
    pub to: Option<i64>,
    /// Substring matched against the action or the data text.
    pub filter: Option<String>,
    pub limit: usize,
}

/// A journal row: an event as the original's journal showed it. Expiry events are not
/// journaled. `lock`, `reject` and `confirm` belong to the owner and, when different, to the
/// cash customer.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    /// The event's sequence number.
    pub id: i64,
    pub customer_id: CustomerId,
    pub created: i64,
    /// `create`, `delete`, `update`, `lock`, `reject`, `confirm`.
    pub action: &'static str,
    /// The token snapshot stored with the event.
    pub data: Value,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClearingQuery {
    /// `Some`: rows where this customer is debitor or creditor. `None`: all rows (admin, who
    /// must name `customer_id` at the API; the frontend enforces that).
    pub customer: Option<CustomerId>,
    /// A single token, for `GET /tokens/:uuid`.
    pub token: Option<Uuid>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub token_type: Option<crate::domain::TokenType>,
    pub limit: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClearingRow {
    /// When the clearing row was written.
    pub date: i64,
    pub token: Token,
    pub token_device_refname: Option<String>,
    pub lock_device_refname: Option<String>,
    pub debitor_id: CustomerId,
    pub creditor_id: CustomerId,
    /// Default-account snapshots at confirmation time (JSON objects), or `None`.
    pub debitor: Option<Value>,
    pub creditor: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClearingSum {
    pub token_type: crate::domain::TokenType,
    pub symbol: String,
    pub debitor_id: CustomerId,
    pub creditor_id: CustomerId,
    pub count: i64,
    /// Exact: a sum of many amounts may exceed 64 bits.
    pub amount: i128,
}

/// A committed event with its global sequence number, for live feeds.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub seq: i64,
    pub token: Uuid,
    pub kind: crate::domain::TokenEventKind,
    pub from: Option<TokenState>,
    pub to: TokenState,
    pub at: i64,
    pub owner_id: CustomerId,
    pub cash_customer_id: Option<CustomerId>,
    pub version: i64,
    /// The token's public snapshot after the event.
    pub snapshot: Value,
}
