//! Column values ↔ domain types, shared by both backends so that they agree on every encoding:
//! enums as their wire text, uuids as lower-case hyphenated text, JSON as `serde_json` text,
//! times as epoch milliseconds.

use anyhow::anyhow;
use serde_json::Value;
use uuid::Uuid;

use super::{Access, Scope, StoreError};
use crate::domain::{CustomerId, Device, DeviceType, Token, TokenEvent, TokenState, TokenType};

/// The token columns every token `SELECT` reads, in the order [`TokenRow`] expects them.
pub(super) const TOKEN_COLUMNS: &str = "uuid, version, created, updated, type, plain_code, \
     secure_code, code_hash, amount, symbol, state, clearstate, expires, refname, lockrefname, \
     info, processing_info, owner_id, owner_device, lock_device, lock_customer_id";

/// The device columns every device `SELECT` reads, in the order [`DeviceRow`] expects them.
pub(super) const DEVICE_COLUMNS: &str =
    "id, uuid, customer_id, created, type, pubkey, lat, lon, refname, info";

/// The customer columns every customer `SELECT` reads, in the order [`CustomerRow`] expects.
pub(super) const CUSTOMER_COLUMNS: &str = "id, created, email, display_name, roles, status, info";

/// The access columns every access `SELECT` reads, in the order [`AccessRow`] expects them.
pub(super) const ACCESS_COLUMNS: &str = "id, customer_id, created, scope, apikey, secret_hash";

/// The `token_events` columns an event insert binds, in [`EventValues`] order.
pub(super) const EVENT_COLUMNS: &str =
    "token_uuid, version, kind, from_state, to_state, created, owner_id, cash_customer_id";

/// `p1, p2, ... pN` where `p` is the backend's placeholder prefix (`$` or `?`).
fn placeholders(prefix: char, count: usize) -> String {
    (1..=count)
        .map(|index| format!("{prefix}{index}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn token_columns() -> impl Iterator<Item = &'static str> {
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

/// Insert an event bound as [`EventValues`].
pub(super) fn insert_event_sql(prefix: char) -> String {
    format!(
        "INSERT INTO token_events ({EVENT_COLUMNS}) VALUES ({})",
        placeholders(prefix, EVENT_COLUMNS.split(',').count())
    )
}

/// Now, in epoch milliseconds UTC.
pub(super) fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// How a uuid is stored.
pub(super) fn uuid_text(uuid: Uuid) -> String {
    uuid.as_hyphenated().to_string()
}

pub(super) fn parse_uuid(text: &str, column: &'static str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(text).map_err(|err| corrupt(column, text, err))
}

pub(super) fn parse_token_state(
    text: &str,
    column: &'static str,
) -> Result<TokenState, StoreError> {
    TokenState::parse(text).ok_or_else(|| corrupt(column, text, "unknown token state"))
}

pub(super) fn parse_token_type(text: &str) -> Result<TokenType, StoreError> {
    TokenType::parse(text).ok_or_else(|| corrupt("tokens.type", text, "unknown token type"))
}

pub(super) fn parse_device_type(text: &str) -> Result<DeviceType, StoreError> {
    DeviceType::parse(text).ok_or_else(|| corrupt("devices.type", text, "unknown device type"))
}

pub(super) fn parse_scope(text: &str) -> Result<Scope, StoreError> {
    Scope::parse(text).ok_or_else(|| corrupt("access.scope", text, "unknown scope"))
}

pub(super) fn parse_json(text: &str, column: &'static str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|err| corrupt(column, text, err))
}

fn parse_json_opt(text: Option<String>, column: &'static str) -> Result<Option<Value>, StoreError> {
    text.map(|text| parse_json(&text, column)).transpose()
}

pub(super) fn json_text(value: &Value) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|err| StoreError::Internal(anyhow!("cannot encode a JSON value: {err}")))
}

fn json_text_opt(value: Option<&Value>) -> Result<Option<String>, StoreError> {
    value.map(json_text).transpose()
}

fn corrupt(column: &str, value: &str, err: impl std::fmt::Display) -> StoreError {
    // Cut long values (JSON) so that one corrupt row does not flood the log.
    let shown: String = value.chars().take(120).collect();
    StoreError::Internal(anyhow!("corrupt value in {column}: {shown:?}: {err}"))
}

/// A row as read with [`TOKEN_COLUMNS`], before decoding.
#[derive(Debug)]
pub(super) struct TokenRow {
    pub uuid: String,
    pub version: i64,
    pub created: i64,
    pub updated: Option<i64>,
    pub token_type: String,
    pub plain_code: Option<String>,
    pub secure_code: String,
    pub code_hash: Option<Vec<u8>>,
    pub amount: i64,
    pub symbol: String,
    pub state: String,
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

impl TokenRow {
    pub fn into_token(self) -> Result<Token, StoreError> {
        Ok(Token {
            uuid: parse_uuid(&self.uuid, "tokens.uuid")?,
            version: self.version,
            created: self.created,
            updated: self.updated,
            token_type: parse_token_type(&self.token_type)?,
            plain_code: self.plain_code,
            secure_code: self.secure_code,
            code_hash: self.code_hash,
            amount: self.amount,
            symbol: self.symbol,
            state: parse_token_state(&self.state, "tokens.state")?,
            clearstate: self.clearstate,
            expires: self.expires,
            refname: self.refname,
            lockrefname: self.lockrefname,
            info: parse_json_opt(self.info, "tokens.info")?,
            processing_info: parse_json_opt(self.processing_info, "tokens.processing_info")?,
            owner_id: self.owner_id,
            owner_device: parse_uuid(&self.owner_device, "tokens.owner_device")?,
            lock_device: self
                .lock_device
                .map(|text| parse_uuid(&text, "tokens.lock_device"))
                .transpose()?,
            lock_customer_id: self.lock_customer_id,
        })
    }
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
}

impl EventValues {
    pub fn new(event: &TokenEvent) -> Self {
        Self {
            token_uuid: uuid_text(event.token),
            version: event.version,
            kind: event.kind.as_str(),
            from_state: event.from.map(TokenState::as_str),
            to_state: event.to.as_str(),
            created: event.at,
            owner_id: event.owner_id,
            cash_customer_id: event.cash_customer_id,
        }
    }
}

/// A write set, encoded. Sets without writes are kept (they commit their events, if any).
#[derive(Debug, Clone)]
pub(super) struct SetValues {
    pub writes: Vec<WriteValues>,
    pub events: Vec<EventValues>,
}

/// Encode a whole commit up front: any encoding error fails it before the database is touched.
pub(super) fn encode_sets(sets: &[super::WriteSet]) -> Result<Vec<SetValues>, StoreError> {
    sets.iter()
        .map(|set| {
            let writes = set
                .writes
                .iter()
                .map(|write| match write {
                    super::TokenWrite::Insert(token) => {
                        TokenValues::new(token).map(WriteValues::Insert)
                    }
                    super::TokenWrite::Update(token) => {
                        TokenValues::new(token).map(WriteValues::Update)
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            let events = set.events.iter().map(EventValues::new).collect();
            Ok(SetValues { writes, events })
        })
        .collect()
}

/// A row as read with [`DEVICE_COLUMNS`], before decoding.
#[derive(Debug)]
pub(super) struct DeviceRow {
    pub id: i64,
    pub uuid: String,
    pub customer_id: CustomerId,
    pub created: i64,
    pub device_type: String,
    pub pubkey: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub refname: Option<String>,
    pub info: Option<String>,
}

impl DeviceRow {
    pub fn into_device(self) -> Result<Device, StoreError> {
        Ok(Device {
            id: self.id,
            uuid: parse_uuid(&self.uuid, "devices.uuid")?,
            customer_id: self.customer_id,
            created: self.created,
            device_type: parse_device_type(&self.device_type)?,
            pubkey: self.pubkey,
            lat: self.lat,
            lon: self.lon,
            refname: self.refname,
            info: self.info,
        })
    }
}

/// A row as read with [`ACCESS_COLUMNS`], before decoding.
#[derive(Debug)]
pub(super) struct AccessRow {
    pub id: i64,
    pub customer_id: CustomerId,
    pub created: i64,
    pub scope: String,
    pub apikey: String,
    pub secret_hash: Vec<u8>,
}

impl AccessRow {
    pub fn into_access(self) -> Result<Access, StoreError> {
        Ok(Access {
            id: self.id,
            customer_id: self.customer_id,
            created: self.created,
            scope: parse_scope(&self.scope)?,
            apikey: self.apikey,
            secret_hash: self.secret_hash,
        })
    }
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
pub(super) fn token_filter_conditions(
    filter: &super::TokenFilter,
) -> Vec<(&'static str, FilterValue)> {
    let mut conditions = Vec::new();
    if let Some(state) = filter.state {
        conditions.push(("state", FilterValue::Text(state.as_str().to_owned())));
    }
    if let Some(clearstate) = filter.clearstate {
        conditions.push(("clearstate", FilterValue::Int(clearstate)));
    }
    if let Some(uuid) = filter.uuid {
        conditions.push(("uuid", FilterValue::Text(uuid_text(uuid))));
    }
    if let Some(device) = filter.device {
        conditions.push(("owner_device", FilterValue::Text(uuid_text(device))));
    }
    conditions
}

#[derive(Debug, Clone)]
pub(super) enum FilterValue {
    Text(String),
    Int(i64),
}

/// The error for a write after the first of a set that did not apply.
pub(super) fn unexpected_write(kind: &str, uuid: &str) -> StoreError {
    StoreError::Internal(anyhow!(
        "commit: the {kind} of token {uuid} after the first write of its set did not apply"
    ))
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
        assert!(insert_event_sql('?').ends_with("(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"));
    }

    #[test]
    fn corrupt_values_are_internal_errors() {
        assert!(matches!(
            parse_uuid("nope", "tokens.uuid"),
            Err(StoreError::Internal(_))
        ));
        assert!(matches!(
            parse_token_state("NOPE", "tokens.state"),
            Err(StoreError::Internal(_))
        ));
        assert!(matches!(
            parse_json("{", "tokens.info"),
            Err(StoreError::Internal(_))
        ));
    }
}
