//! Column values ↔ domain types, shared by both backends so that they agree on every encoding:
//! enums as their wire text, uuids as lower-case hyphenated text, JSON as `serde_json` text,
//! times as epoch milliseconds.

use anyhow::anyhow;
use serde_json::Value;
use uuid::Uuid;

use super::sql::{Row, Value as Param};
use super::{ClearingQuery, JournalEntry, JournalQuery, Scope, StoreError};
use crate::domain::{CustomerId, Device, DeviceType, Token, TokenEvent, TokenEventKind, TokenState, TokenType};

/// The token columns every token `SELECT` reads, in the order `decode::token` expects them.
pub(super) const TOKEN_COLUMNS: &str = "uuid, version, created, updated, type, plain_code, \
     secure_code, code_hash, amount, symbol, state, clearstate, expires, refname, lockrefname, \
     info, processing_info, owner_id, owner_device, lock_device, lock_customer_id";

/// The device columns every device `SELECT` reads, in the order `decode::device` expects them.
pub(super) const DEVICE_COLUMNS: &str = "id, uuid, customer_id, created, type, pubkey, lat, lon, refname, info";

/// The customer columns every customer `SELECT` reads, in the order [`CustomerRow`] expects.
pub(super) const CUSTOMER_COLUMNS: &str = "id, created, email, display_name, roles, status, info";

/// The access columns every access `SELECT` reads, in the order `decode::access` expects them.
pub(super) const ACCESS_COLUMNS: &str = "id, customer_id, created, scope, apikey, secret_hash";

/// The `token_events` columns an event insert binds, in [`EventValues`] order.
pub(super) const EVENT_COLUMNS: &str = "token_uuid, version, kind, from_state, to_state, \
     created, owner_id, cash_customer_id, payload";

/// The `token_events` columns [`EventRow`] reads, in its order.
pub(super) const EVENT_RECORD_COLUMNS: &str = "seq, token_uuid, kind, from_state, to_state, \
     created, owner_id, cash_customer_id, version, payload";

/// The account columns every account `SELECT` reads, in the order [`AccountRow`] expects.
pub(super) const ACCOUNT_COLUMNS: &str = "id, customer_id, value, type, is_default, symbol, refname";

/// The `clearing` columns a clearing insert binds, in [`ClearingValues`] order (the account
/// snapshots are computed by the statement itself).
pub(super) const CLEARING_COLUMNS: &str =
    "token_uuid, debitor_id, creditor_id, debitor_account, creditor_account, status, created";

/// How many tokens one transaction of the history cleanup removes.
pub(super) const HISTORY_BATCH: usize = 1_000;

/// The SQL dialect differences the shared query builders need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    fn prefix(self) -> char {
        match self {
            Self::Postgres => '$',
            Self::Sqlite => '?',
        }
    }

    /// Placeholder number `index` (1-based).
    pub fn placeholder(self, index: usize) -> String {
        format!("{}{index}", self.prefix())
    }

    /// `needle` occurs in `haystack` (case-sensitive, no pattern characters), both SQL
    /// expressions.
    fn contains(self, haystack: &str, needle: &str) -> String {
        match self {
            Self::Postgres => format!("strpos({haystack}, {needle}) > 0"),
            Self::Sqlite => format!("instr({haystack}, {needle}) > 0"),
        }
    }

    /// A row-lock clause for a `SELECT` (`" FOR <strength>"`) on PostgreSQL; nothing on
    /// SQLite, whose write transaction already holds the whole database.
    pub fn row_lock(self, strength: &str) -> String {
        match self {
            Self::Postgres => format!(" FOR {strength}"),
            Self::Sqlite => String::new(),
        }
    }

    /// `column` is one of the strings of the JSON array bound at `placeholder`.
    pub fn in_json_text_array(self, column: &str, placeholder: &str) -> String {
        match self {
            Self::Postgres => {
                format!("{column} IN (SELECT jsonb_array_elements_text(CAST(CAST({placeholder} AS TEXT) AS JSONB)))")
            }
            Self::Sqlite => format!("{column} IN (SELECT value FROM json_each({placeholder}))"),
        }
    }

    /// The text value of `field` in the JSON object text `column`, as the index of a kind's
    /// lookup column (see the `entities` migration) is written. `field` must be a plain name.
    pub fn json_text_field(self, column: &str, field: &str) -> String {
        match self {
            Self::Postgres => format!("({column}::jsonb ->> '{field}')"),
            Self::Sqlite => format!("({column} ->> '{field}')"),
        }
    }

    /// An expression building the JSON text of `customer`'s default account (the lowest id
    /// among its defaults), or NULL: keys in the order id, customer_id, value, type, default,
    /// symbol, refname.
    pub fn default_account_json(self, customer: &str) -> String {
        let object = match self {
            Self::Postgres => "json_build_object",
            Self::Sqlite => "json_object",
        };
        let cast = match self {
            Self::Postgres => "::TEXT",
            Self::Sqlite => "",
        };
        format!(
            "(SELECT {object}('id', id, 'customer_id', customer_id, 'value', value, \
             'type', type, 'default', is_default, 'symbol', symbol, 'refname', refname){cast} \
             FROM accounts WHERE customer_id = {customer} AND is_default = 1 ORDER BY id LIMIT 1)"
        )
    }
}

/// Insert a clearing row bound as [`ClearingValues`]: each party's default account is
/// snapshotted by the statement, inside the commit's transaction. A token has one clearing row:
/// a second insert for it changes nothing.
pub(super) fn insert_clearing_sql(dialect: Dialect) -> String {
    let p = |index| dialect.placeholder(index);
    format!(
        "INSERT INTO clearing ({CLEARING_COLUMNS}) VALUES ({}, {}, {}, {}, {}, 0, {}) \
         ON CONFLICT (token_uuid) DO NOTHING",
        p(1),
        p(2),
        p(3),
        dialect.default_account_json(&p(2)),
        dialect.default_account_json(&p(3)),
        p(4),
    )
}

/// The default-account rule (spec §5.8), with the customer as placeholder 1: when the customer
/// has zero or several default accounts, the lowest id becomes the only default.
pub(super) fn default_rule_sql(dialect: Dialect) -> String {
    let customer = dialect.placeholder(1);
    format!(
        "UPDATE accounts SET is_default = CASE WHEN id = \
         (SELECT MIN(id) FROM accounts WHERE customer_id = {customer}) THEN 1 ELSE 0 END \
         WHERE customer_id = {customer} AND \
         (SELECT COUNT(*) FROM accounts WHERE customer_id = {customer} AND is_default = 1) <> 1"
    )
}

/// `p1, p2, ... pN` where `p` is the backend's placeholder prefix (`$` or `?`).
fn placeholders(prefix: char, count: usize) -> String {
    (1..=count).map(|index| format!("{prefix}{index}")).collect::<Vec<_>>().join(", ")
}

pub(super) fn token_columns() -> impl Iterator<Item = &'static str> {
    TOKEN_COLUMNS.split(',').map(str::trim)
}

/// Insert a token bound as [`TokenValues`]; changes no row if the uuid or the plain code is
/// taken (any unique constraint, as `INSERT OR IGNORE` would, but still failing on NOT NULL or
/// foreign keys, identically on both backends).
pub(super) fn insert_token_sql(prefix: char) -> String {
    format!(
        "INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES ({}) ON CONFLICT DO NOTHING",
        placeholders(prefix, token_columns().count())
    )
}

/// Update every column of a token bound as [`TokenValues`], over its predecessor version only.
pub(super) fn update_token_sql(prefix: char) -> String {
    let assignments = token_columns()
        .enumerate()
        .skip(1)
        .map(|(index, column)| format!("{column} = {prefix}{}", index + 1))
        .collect::<Vec<_>>()
        .join(", ");
    // Column 1 is the uuid, column 2 the version. The cast keeps PostgreSQL from typing the
    // version parameter as `integer` from the `- 1`.
    format!(
        "UPDATE tokens SET {assignments} \
         WHERE uuid = {prefix}1 AND version = CAST({prefix}2 AS BIGINT) - 1"
    )
}

/// [`TOKEN_COLUMNS`] of the table aliased `alias`.
pub(super) fn token_columns_of(alias: &str) -> String {
    token_columns().map(|column| format!("{alias}.{column}")).collect::<Vec<_>>().join(", ")
}

/// Insert an event bound as [`EventValues`].
pub(super) fn insert_event_sql(prefix: char) -> String {
    format!(
        "INSERT INTO token_events ({EVENT_COLUMNS}) VALUES ({})",
        placeholders(prefix, EVENT_COLUMNS.split(',').count())
    )
}

/// How a uuid is stored.
pub(super) fn uuid_text(uuid: Uuid) -> String {
    uuid.as_hyphenated().to_string()
}

pub(super) fn parse_uuid(text: &str, column: &'static str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(text).map_err(|err| corrupt(column, text, err))
}

pub(super) fn parse_token_state(text: &str, column: &'static str) -> Result<TokenState, StoreError> {
    TokenState::parse(text).ok_or_else(|| corrupt(column, text, "unknown token state"))
}

pub(super) fn parse_token_type(text: &str) -> Result<TokenType, StoreError> {
    TokenType::parse(text).ok_or_else(|| corrupt("tokens.type", text, "unknown token type"))
}

pub(super) fn parse_device_type(text: &str) -> Result<DeviceType, StoreError> {
    DeviceType::parse(text).ok_or_else(|| corrupt("devices.type", text, "unknown device type"))
}

pub(super) fn parse_event_kind(text: &str) -> Result<TokenEventKind, StoreError> {
    const KINDS: [TokenEventKind; 7] = [
        TokenEventKind::Created,
        TokenEventKind::Locked,
        TokenEventKind::Rejected,
        TokenEventKind::Confirmed,
        TokenEventKind::Updated,
        TokenEventKind::Deleted,
        TokenEventKind::Expired,
    ];
    KINDS
        .into_iter()
        .find(|kind| kind.as_str() == text)
        .ok_or_else(|| corrupt("token_events.kind", text, "unknown event kind"))
}

pub(super) fn parse_scope(text: &str) -> Result<Scope, StoreError> {
    Scope::parse(text).ok_or_else(|| corrupt("access.scope", text, "unknown scope"))
}

pub(super) fn parse_json(text: &str, column: &'static str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|err| corrupt(column, text, err))
}

pub(super) fn json_text(value: &Value) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|err| StoreError::Internal(anyhow!("cannot encode a JSON value: {err}")))
}

fn json_text_opt(value: Option<&Value>) -> Result<Option<String>, StoreError> {
    value.map(json_text).transpose()
}

fn corrupt(column: &str, value: &str, err: impl std::fmt::Display) -> StoreError {
    // Cut long values (JSON) so that one corrupt row does not flood the log.
    let shown: String = value.chars().take(120).collect();
    StoreError::Internal(anyhow!("corrupt value in {column}: {shown:?}: {err}"))
}

/// A token encoded for binding, in the order of [`TOKEN_COLUMNS`] (the `*_text` fields hold
/// the encoded enums, uuids and JSON). Owned, so that it can move into a blocking task.
#[derive(Debug, Clone)]
pub(super) struct TokenValues {
    pub uuid: String,
    pub version: i64,
    pub created: i64,
    pub updated: Option<i64>,
    pub token_type: &'static str,
    pub plain_code: Option<String>,
    pub secure_code: String,
    pub code_hash: Option<Vec<u8>>,
    pub amount: i64,
    pub symbol: String,
    pub state: &'static str,
    pub clearstate: i64,
    pub expires: Option<i64>,
    pub refname: Option<String>,
    pub lockrefname: Option<String>,
    pub info: Option<String>,
    pub processing_info: Option<String>,
    pub owner_id: CustomerId,
    pub owner_device: String,
    pub lock_device: Option<String>,
    pub lock_customer_id: Option<CustomerId>,
}

impl TokenValues {
    pub fn new(token: &Token) -> Result<Self, StoreError> {
        Ok(Self {
            uuid: uuid_text(token.uuid),
            version: token.version,
            created: token.created,
            updated: token.updated,
            token_type: token.token_type.as_str(),
            plain_code: token.plain_code.clone(),
            secure_code: token.secure_code.clone(),
            code_hash: token.code_hash.clone(),
            amount: token.amount,
            symbol: token.symbol.clone(),
            state: token.state.as_str(),
            clearstate: token.clearstate,
            expires: token.expires,
            refname: token.refname.clone(),
            lockrefname: token.lockrefname.clone(),
            info: json_text_opt(token.info.as_ref())?,
            processing_info: json_text_opt(token.processing_info.as_ref())?,
            owner_id: token.owner_id,
            owner_device: uuid_text(token.owner_device),
            lock_device: token.lock_device.map(uuid_text),
            lock_customer_id: token.lock_customer_id,
        })
    }
}

/// A parameter both drivers can bind: how the group commits of both backends bind a token's
/// columns from one list.
pub(super) trait Bind: tokio_postgres::types::ToSql + Sync + rusqlite::ToSql {}

impl<T: tokio_postgres::types::ToSql + Sync + rusqlite::ToSql> Bind for T {}

impl TokenValues {
    /// The values in [`TOKEN_COLUMNS`] order.
    pub fn params(&self) -> [&dyn Bind; 21] {
        [
            &self.uuid,
            &self.version,
            &self.created,
            &self.updated,
            &self.token_type,
            &self.plain_code,
            &self.secure_code,
            &self.code_hash,
            &self.amount,
            &self.symbol,
            &self.state,
            &self.clearstate,
            &self.expires,
            &self.refname,
            &self.lockrefname,
            &self.info,
            &self.processing_info,
            &self.owner_id,
            &self.owner_device,
            &self.lock_device,
            &self.lock_customer_id,
        ]
    }
}

/// One token write, encoded.
#[derive(Debug, Clone)]
pub(super) enum WriteValues {
    Insert(TokenValues),
    Update(TokenValues),
}

/// An event encoded for binding.
#[derive(Debug, Clone)]
pub(super) struct EventValues {
    pub token_uuid: String,
    pub version: i64,
    pub kind: &'static str,
    pub from_state: Option<&'static str>,
    pub to_state: &'static str,
    pub created: i64,
    pub owner_id: CustomerId,
    pub cash_customer_id: Option<CustomerId>,
    /// `Token::snapshot_json` of the token as its set wrote it, as JSON text.
    pub payload: String,
}

impl EventValues {
    /// `payload` is the snapshot JSON text of the event's token (see [`encode_sets`]).
    pub fn new(event: &TokenEvent, payload: String) -> Self {
        Self {
            token_uuid: uuid_text(event.token),
            version: event.version,
            kind: event.kind.as_str(),
            from_state: event.from.map(TokenState::as_str),
            to_state: event.to.as_str(),
            created: event.at,
            owner_id: event.owner_id,
            cash_customer_id: event.cash_customer_id,
            payload,
        }
    }
}

/// A clearing row encoded for binding, in [`CLEARING_COLUMNS`] order (without the snapshots
/// and the status).
#[derive(Debug, Clone)]
pub(super) struct ClearingValues {
    pub token_uuid: String,
    pub debitor_id: CustomerId,
    pub creditor_id: CustomerId,
    pub created: i64,
}

/// A write set, encoded. Sets without writes are kept (they commit their events, if any).
#[derive(Debug, Clone)]
pub(super) struct SetValues {
    pub writes: Vec<WriteValues>,
    pub events: Vec<EventValues>,
    pub clearing: Option<ClearingValues>,
    pub idempotency: Option<super::IdempotencyRecord>,
    pub entities: Vec<super::entities::EntityValues>,
    /// The set's ledger part alone, as rows: filled by [`encode_ledger_rows`] for a commit set
    /// by set (PostgreSQL's pipelined commit folds the ledger parts of all sets instead).
    pub ledger_rows: Vec<super::ledger::RowWrite>,
}

/// The snapshot an event row stores: that of the last write of its set for the event's token;
/// `{}` (the column default) for an event whose set wrote no such token.
fn event_payload(set: &super::WriteSet, event: &TokenEvent) -> Result<String, StoreError> {
    match set.writes.iter().rev().map(super::TokenWrite::token).find(|token| token.uuid == event.token) {
        Some(token) => serde_json::to_string(&token.snapshot_json())
            .map_err(|err| StoreError::Internal(anyhow!("cannot encode a token snapshot: {err}"))),
        None => Ok("{}".to_owned()),
    }
}

/// Encode a whole commit up front: any encoding error fails it before the database is touched.
pub(super) fn encode_sets(sets: &[super::WriteSet]) -> Result<Vec<SetValues>, StoreError> {
    sets.iter()
        .map(|set| {
            let writes = set
                .writes
                .iter()
                .map(|write| match write {
                    super::TokenWrite::Insert(token) => TokenValues::new(token).map(WriteValues::Insert),
                    super::TokenWrite::Update(token) => TokenValues::new(token).map(WriteValues::Update),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let events = set
                .events
                .iter()
                .map(|event| Ok(EventValues::new(event, event_payload(set, event)?)))
                .collect::<Result<Vec<_>, StoreError>>()?;
            let clearing = set.clearing.as_ref().map(|clearing| ClearingValues {
                token_uuid: uuid_text(clearing.token),
                debitor_id: clearing.debitor_id,
                creditor_id: clearing.creditor_id,
                created: clearing.created,
            });
            let entities = set.entities.iter().map(super::entities::EntityValues::new).collect();
            Ok(SetValues {
                writes,
                events,
                clearing,
                idempotency: set.idempotency.clone(),
                entities,
                ledger_rows: Vec::new(),
            })
        })
        .collect()
}

/// Encode each set's ledger part as rows of its own, for a commit set by set.
pub(super) fn encode_ledger_rows(sets: &[super::WriteSet], values: &mut [SetValues]) -> Result<(), StoreError> {
    for (set, values) in sets.iter().zip(values) {
        values.ledger_rows = super::ledger::rows([&set.ledger])?;
    }
    Ok(())
}

/// How e-mail addresses and API keys are stored and looked up: compared case-insensitively.
pub(super) fn fold_case(text: &str) -> String {
    text.to_lowercase()
}

/// A list limit as bound into SQL: never above [`super::LIST_LIMIT_MAX`].
pub(super) fn list_limit(limit: usize) -> i64 {
    // LIST_LIMIT_MAX fits an i64 by far.
    i64::try_from(limit.min(super::LIST_LIMIT_MAX)).unwrap_or(0)
}

/// The `WHERE` conditions (after `owner_id`) of a token list, as `(column, value)` pairs.
pub(super) fn token_filter_conditions(filter: &super::TokenFilter) -> Vec<(&'static str, Param)> {
    let mut conditions = Vec::new();
    if let Some(state) = filter.state {
        conditions.push(("state", Param::Text(state.as_str().to_owned())));
    }
    if let Some(clearstate) = filter.clearstate {
        conditions.push(("clearstate", Param::Int(clearstate)));
    }
    if let Some(uuid) = filter.uuid {
        conditions.push(("uuid", Param::Text(uuid_text(uuid))));
    }
    if let Some(device) = filter.device {
        conditions.push(("owner_device", Param::Text(uuid_text(device))));
    }
    conditions
}

/// How `is_default` is stored.
pub(super) fn default_flag(default: bool) -> i64 {
    i64::from(default)
}

/// A customer row ([`CUSTOMER_COLUMNS`]) with its login secrets.
pub(super) const CREDENTIAL_COLUMNS: &str =
    "id, created, email, display_name, roles, status, info, password_hash, twofa_secret";

/// A bound query: SQL text and its parameters, in placeholder order.
#[derive(Debug)]
pub(super) struct BoundQuery {
    pub sql: String,
    pub values: Vec<Param>,
}

impl BoundQuery {
    fn new(sql: impl Into<String>) -> Self {
        Self { sql: sql.into(), values: Vec::new() }
    }

    /// Bind `value` and return its placeholder.
    fn bind(&mut self, dialect: Dialect, value: Param) -> String {
        self.values.push(value);
        dialect.placeholder(self.values.len())
    }
}

/// A customer's accounts in id order, optionally only the default one (or only the others);
/// columns [`ACCOUNT_COLUMNS`].
pub(super) fn list_accounts_query(dialect: Dialect, customer: CustomerId, default: Option<bool>) -> BoundQuery {
    let mut query = BoundQuery::new(format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE customer_id = "));
    let customer = query.bind(dialect, Param::Int(customer));
    query.sql.push_str(&customer);
    if let Some(default) = default {
        let flag = query.bind(dialect, Param::Int(default_flag(default)));
        // is_default is INTEGER; PostgreSQL binds the parameter as BIGINT.
        query.sql.push_str(&format!(" AND is_default = CAST({flag} AS BIGINT)"));
    }
    let limit = query.bind(dialect, Param::Int(list_limit(super::LIST_LIMIT_MAX)));
    query.sql.push_str(&format!(" ORDER BY id LIMIT {limit}"));
    query
}

/// Events after `after_seq` in sequence order, optionally those of one customer (owner or cash
/// customer), at most `limit`; columns [`EVENT_RECORD_COLUMNS`].
pub(super) fn events_after_query(
    dialect: Dialect,
    customer: Option<CustomerId>,
    after_seq: i64,
    limit: usize,
) -> BoundQuery {
    let mut query = BoundQuery::new(format!("SELECT {EVENT_RECORD_COLUMNS} FROM token_events WHERE seq > "));
    let after = query.bind(dialect, Param::Int(after_seq));
    query.sql.push_str(&after);
    if let Some(customer) = customer {
        let customer = query.bind(dialect, Param::Int(customer));
        query.sql.push_str(&format!(" AND (owner_id = {customer} OR cash_customer_id = {customer})"));
    }
    let limit = query.bind(dialect, Param::Int(list_limit(limit)));
    query.sql.push_str(&format!(" ORDER BY seq LIMIT {limit}"));
    query
}

/// Sums and counts by (state, type), over the tokens of `customer` (owned, or locked by one of
/// its devices) or over all tokens. Columns: state, type, amount (two columns, see
/// [`exact_sum`]), count.
pub(super) fn token_stats_query(dialect: Dialect, customer: Option<CustomerId>) -> BoundQuery {
    let mut query = BoundQuery::new(format!("SELECT state, type, {}, COUNT(*) FROM tokens", exact_sum("amount")));
    if let Some(customer) = customer {
        let customer = query.bind(dialect, Param::Int(customer));
        query.sql.push_str(&format!(
            " WHERE owner_id = {customer} OR lock_device IN \
             (SELECT uuid FROM devices WHERE customer_id = {customer})"
        ));
    }
    query.sql.push_str(" GROUP BY state, type ORDER BY state, type");
    query
}

/// The journal's text for an event kind; `None` for events that are not journaled (expiry).
pub(super) fn journal_action(kind: TokenEventKind) -> Option<&'static str> {
    match kind {
        TokenEventKind::Created => Some("create"),
        TokenEventKind::Deleted => Some("delete"),
        TokenEventKind::Updated => Some("update"),
        TokenEventKind::Locked => Some("lock"),
        TokenEventKind::Rejected => Some("reject"),
        TokenEventKind::Confirmed => Some("confirm"),
        TokenEventKind::Expired => None,
    }
}

/// Events journaled for the cash customer too (when it is not the owner).
fn journaled_for_cash_customer(kind: TokenEventKind) -> bool {
    matches!(kind, TokenEventKind::Locked | TokenEventKind::Rejected | TokenEventKind::Confirmed)
}

/// The `processing_info` a `reject` journal entry shows instead of the token's.
const REJECT_PROCESSING_INFO: &str = r#"{"reject_reason":"Invalid token code"}"#;

/// The journal's action as a SQL expression over `token_events.kind`.
const JOURNAL_ACTION_SQL: &str = "CASE kind WHEN 'created' THEN 'create' \
     WHEN 'deleted' THEN 'delete' WHEN 'updated' THEN 'update' WHEN 'locked' THEN 'lock' \
     WHEN 'rejected' THEN 'reject' WHEN 'confirmed' THEN 'confirm' ELSE '' END";

/// The events behind a journal page, newest first; columns as [`JournalEventRow`] reads them.
/// One event may give two entries (see [`journal_entries`]), so at most `limit` events are
/// read and the entries cut to `limit`.
pub(super) fn journal_query(dialect: Dialect, journal: &JournalQuery) -> BoundQuery {
    let mut query = BoundQuery::new(
        "SELECT seq, created, kind, owner_id, cash_customer_id, payload FROM token_events \
         WHERE kind <> 'expired'",
    );
    if let Some(customer) = journal.customer {
        let customer = query.bind(dialect, Param::Int(customer));
        query.sql.push_str(&format!(
            " AND (owner_id = {customer} OR (cash_customer_id = {customer} \
             AND kind IN ('locked', 'rejected', 'confirmed')))"
        ));
    }
    if let Some(from) = journal.from {
        let from = query.bind(dialect, Param::Int(from));
        query.sql.push_str(&format!(" AND created >= {from}"));
    }
    if let Some(to) = journal.to {
        let to = query.bind(dialect, Param::Int(to));
        query.sql.push_str(&format!(" AND created < {to}"));
    }
    if let Some(filter) = &journal.filter {
        let filter = query.bind(dialect, Param::Text(filter.clone()));
        let reject_text = format!("'\"processing_info\":{REJECT_PROCESSING_INFO}'");
        query.sql.push_str(&format!(
            " AND ({} OR {} OR (kind = 'rejected' AND {}))",
            dialect.contains(&format!("({JOURNAL_ACTION_SQL})"), &filter),
            dialect.contains("payload", &filter),
            dialect.contains(&reject_text, &filter),
        ));
    }
    let limit = query.bind(dialect, Param::Int(list_limit(journal.limit)));
    query.sql.push_str(&format!(" ORDER BY seq DESC LIMIT {limit}"));
    query
}

/// A row of [`journal_query`].
#[derive(Debug)]
pub(super) struct JournalEventRow {
    pub seq: i64,
    pub created: i64,
    pub kind: String,
    pub owner_id: CustomerId,
    pub cash_customer_id: Option<CustomerId>,
    pub payload: String,
}

impl JournalEventRow {
    /// A row of [`journal_query`].
    pub fn read(row: &Row) -> Result<Self, StoreError> {
        Ok(Self {
            seq: row.i64(0)?,
            created: row.i64(1)?,
            kind: row.text(2)?,
            owner_id: row.i64(3)?,
            cash_customer_id: row.opt_i64(4)?,
            payload: row.text(5)?,
        })
    }
}

/// Journal entries from events, newest first: one for the owner and, for lock, reject and
/// confirm, one for a different cash customer (admin view); only the customer's own when the
/// query names one. At most `limit`.
pub(super) fn journal_entries(
    rows: Vec<JournalEventRow>,
    journal: &JournalQuery,
) -> Result<Vec<JournalEntry>, StoreError> {
    let limit = usize::try_from(list_limit(journal.limit)).unwrap_or(0);
    let mut entries = Vec::with_capacity(rows.len().min(limit));
    for row in rows {
        let kind = parse_event_kind(&row.kind)?;
        let Some(action) = journal_action(kind) else {
            continue;
        };
        let mut data = parse_json(&row.payload, "token_events.payload")?;
        if kind == TokenEventKind::Rejected {
            if let Value::Object(fields) = &mut data {
                fields
                    .insert("processing_info".to_owned(), parse_json(REJECT_PROCESSING_INFO, "journal reject reason")?);
            }
        }
        let mut customers = Vec::with_capacity(2);
        match journal.customer {
            Some(customer) => customers.push(customer),
            None => {
                customers.push(row.owner_id);
                if let Some(cash) = row.cash_customer_id {
                    if cash != row.owner_id && journaled_for_cash_customer(kind) {
                        customers.push(cash);
                    }
                }
            }
        }
        for customer_id in customers {
            entries.push(JournalEntry { id: row.seq, customer_id, created: row.created, action, data: data.clone() });
        }
    }
    entries.truncate(limit);
    Ok(entries)
}

/// The `WHERE` conditions shared by clearing rows and sums (`c` is `clearing`, `t` `tokens`).
fn clearing_conditions(dialect: Dialect, clearing: &ClearingQuery, query: &mut BoundQuery) {
    query.sql.push_str(" WHERE 1 = 1");
    if let Some(customer) = clearing.customer {
        let customer = query.bind(dialect, Param::Int(customer));
        query.sql.push_str(&format!(" AND (c.debitor_id = {customer} OR c.creditor_id = {customer})"));
    }
    if let Some(token) = clearing.token {
        let token = query.bind(dialect, Param::Text(uuid_text(token)));
        query.sql.push_str(&format!(" AND c.token_uuid = {token}"));
    }
    if let Some(from) = clearing.from {
        let from = query.bind(dialect, Param::Int(from));
        query.sql.push_str(&format!(" AND c.created >= {from}"));
    }
    if let Some(to) = clearing.to {
        let to = query.bind(dialect, Param::Int(to));
        query.sql.push_str(&format!(" AND c.created < {to}"));
    }
    if let Some(token_type) = clearing.token_type {
        let token_type = query.bind(dialect, Param::Text(token_type.as_str().to_owned()));
        query.sql.push_str(&format!(" AND t.type = {token_type}"));
    }
}

/// Clearing rows in clearing order: [`TOKEN_COLUMNS`] first, then the clearing
/// columns, from index 21 (`decode::clearing_row`).
pub(super) fn clearing_rows_query(dialect: Dialect, clearing: &ClearingQuery) -> BoundQuery {
    let mut query = BoundQuery::new(format!(
        "SELECT {}, c.created, od.refname, ld.refname, c.debitor_id, c.creditor_id, \
         c.debitor_account, c.creditor_account \
         FROM clearing c JOIN tokens t ON t.uuid = c.token_uuid \
         LEFT JOIN devices od ON od.uuid = t.owner_device \
         LEFT JOIN devices ld ON ld.uuid = t.lock_device",
        token_columns_of("t")
    ));
    clearing_conditions(dialect, clearing, &mut query);
    let limit = query.bind(dialect, Param::Int(list_limit(clearing.limit)));
    query.sql.push_str(&format!(" ORDER BY c.id LIMIT {limit}"));
    query
}

/// Sums by (type, symbol, debitor, creditor) over [`clearing_rows_query`]'s selection. Columns:
/// type, symbol, debitor_id, creditor_id, count, amount (two columns, see [`exact_sum`]).
pub(super) fn clearing_sums_query(dialect: Dialect, clearing: &ClearingQuery) -> BoundQuery {
    let mut query = BoundQuery::new(format!(
        "SELECT t.type, t.symbol, c.debitor_id, c.creditor_id, COUNT(*), {} \
         FROM clearing c JOIN tokens t ON t.uuid = c.token_uuid",
        exact_sum("t.amount")
    ));
    clearing_conditions(dialect, clearing, &mut query);
    let limit = query.bind(dialect, Param::Int(list_limit(clearing.limit)));
    query.sql.push_str(&format!(
        " GROUP BY t.type, t.symbol, c.debitor_id, c.creditor_id \
         ORDER BY t.type, t.symbol, c.debitor_id, c.creditor_id LIMIT {limit}"
    ));
    query
}

/// The SQL of `update_device`: `SET` only the given fields (a `Some(None)` refname sets NULL);
/// `None` when there is nothing to set.
pub(super) fn update_device_query(
    dialect: Dialect,
    customer: CustomerId,
    id: i64,
    device_type: Option<DeviceType>,
    refname: Option<Option<String>>,
) -> Option<BoundQuery> {
    let mut query = BoundQuery::new("UPDATE devices SET ");
    let mut assignments = Vec::with_capacity(2);
    if let Some(device_type) = device_type {
        let device_type = query.bind(dialect, Param::Text(device_type.as_str().to_owned()));
        assignments.push(format!("type = {device_type}"));
    }
    if let Some(refname) = refname {
        let refname = query.bind(dialect, Param::from(refname));
        assignments.push(format!("refname = {refname}"));
    }
    if assignments.is_empty() {
        return None;
    }
    query.sql.push_str(&assignments.join(", "));
    let customer = query.bind(dialect, Param::Int(customer));
    let id = query.bind(dialect, Param::Int(id));
    query.sql.push_str(&format!(" WHERE customer_id = {customer} AND id = {id}"));
    Some(query)
}

/// Amounts are at most 2^53 - 1, but a sum of many may exceed 64 bits, where PostgreSQL's
/// cast and SQLite's integer `SUM` fail. So each sum is two 64-bit sums that cannot overflow
/// before 2^31 rows: of the amounts' high parts (amount / 2^32) and of their low parts
/// (amount % 2^32), joined exactly by [`exact_sum_value`]. Two columns, high then low.
pub(super) fn exact_sum(column: &str) -> String {
    format!(
        "CAST(COALESCE(SUM({column} / {SUM_SPLIT}), 0) AS BIGINT), \
         CAST(COALESCE(SUM({column} % {SUM_SPLIT}), 0) AS BIGINT)"
    )
}

const SUM_SPLIT: i64 = 1 << 32;

/// The sum that the two columns of [`exact_sum`] stand for.
pub(super) fn exact_sum_value(high: i64, low: i64) -> i128 {
    i128::from(high) * i128::from(SUM_SPLIT) + i128::from(low)
}

/// A stored device as its idempotency key's result.
pub(super) fn device_json(device: &Device) -> Result<String, StoreError> {
    serde_json::to_string(device).map_err(|err| StoreError::Internal(anyhow!("cannot encode a device: {err}")))
}

/// Columns of `idempotency_keys`, in the order [`insert_idempotency_sql`] binds them.
pub(super) const IDEMPOTENCY_COLUMNS: &str = "customer_id, idem_key, fingerprint, created, result";

/// Store an idempotency key unless the customer already used it (then nothing is inserted).
pub(super) fn insert_idempotency_sql(dialect: Dialect) -> String {
    let values = (1..=5).map(|index| dialect.placeholder(index)).collect::<Vec<_>>().join(", ");
    format!("INSERT INTO idempotency_keys ({IDEMPOTENCY_COLUMNS}) VALUES ({values}) ON CONFLICT DO NOTHING")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_limit_is_capped() {
        assert_eq!(list_limit(5), 5);
        assert_eq!(list_limit(usize::MAX), super::super::LIST_LIMIT_MAX as i64);
    }

    #[test]
    fn generated_sql() {
        assert_eq!(
            update_token_sql('$').split(" WHERE ").nth(1),
            Some("uuid = $1 AND version = CAST($2 AS BIGINT) - 1")
        );
        assert!(update_token_sql('?').contains("version = ?2, created = ?3,"));
        assert!(update_token_sql('?').contains("lock_customer_id = ?21 WHERE"));
        assert!(insert_token_sql('$').contains("$21) ON CONFLICT DO NOTHING"));
        assert!(insert_event_sql('?').ends_with("(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"));
    }

    #[test]
    fn split_sums_join_exactly_beyond_64_bits() {
        let amount: i64 = (1 << 53) - 1;
        let (high, low) = (amount / SUM_SPLIT, amount % SUM_SPLIT);
        assert_eq!(exact_sum_value(high, low), i128::from(amount));
        // 4096 of the largest amounts: far beyond i64::MAX, still exact.
        let total = exact_sum_value(high * 4096, low * 4096);
        assert_eq!(total, i128::from(amount) * 4096);
        assert!(total > i128::from(i64::MAX));
    }

    #[test]
    fn corrupt_values_are_internal_errors() {
        assert!(matches!(parse_uuid("nope", "tokens.uuid"), Err(StoreError::Internal(_))));
        assert!(matches!(parse_token_state("NOPE", "tokens.state"), Err(StoreError::Internal(_))));
        assert!(matches!(parse_json("{", "tokens.info"), Err(StoreError::Internal(_))));
    }
}
