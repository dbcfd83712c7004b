//! Result rows as domain values: one decoder per row shape, shared by both backends.

use super::rows::{
    parse_device_type, parse_event_kind, parse_json, parse_scope, parse_token_state, parse_token_type, parse_uuid,
};
use super::sql::Row;
use super::{
    Access, AccessRecord, Account, ClearingRow, Credentials, Customer, EventRecord, IdempotencyKey, IdempotencyRecord,
    StoreError,
};
use crate::domain::{Device, Token};

/// The index of the first clearing column in a `rows::clearing_rows_query` row, after the
/// token's [`super::rows::TOKEN_COLUMNS`].
pub(super) const CLEARING_AT: usize = 21;

fn uuid(row: &Row, index: usize, column: &'static str) -> Result<uuid::Uuid, StoreError> {
    parse_uuid(&row.text(index)?, column)
}

fn json_opt(row: &Row, index: usize, column: &'static str) -> Result<Option<serde_json::Value>, StoreError> {
    row.opt_text(index)?.map(|text| parse_json(&text, column)).transpose()
}

/// The `TOKEN_COLUMNS` of `row`, from column `at` on.
pub(super) fn token(row: &Row, at: usize) -> Result<Token, StoreError> {
    Ok(Token {
        uuid: uuid(row, at, "tokens.uuid")?,
        version: row.i64(at + 1)?,
        created: row.i64(at + 2)?,
        updated: row.opt_i64(at + 3)?,
        token_type: parse_token_type(&row.text(at + 4)?)?,
        plain_code: row.opt_text(at + 5)?,
        secure_code: row.text(at + 6)?,
        code_hash: row.opt_bytes(at + 7)?,
        amount: row.i64(at + 8)?,
        symbol: row.text(at + 9)?,
        state: parse_token_state(&row.text(at + 10)?, "tokens.state")?,
        clearstate: row.i64(at + 11)?,
        expires: row.opt_i64(at + 12)?,
        refname: row.opt_text(at + 13)?,
        lockrefname: row.opt_text(at + 14)?,
        info: json_opt(row, at + 15, "tokens.info")?,
        processing_info: json_opt(row, at + 16, "tokens.processing_info")?,
        owner_id: row.i64(at + 17)?,
        owner_device: uuid(row, at + 18, "tokens.owner_device")?,
        lock_device: row.opt_text(at + 19)?.map(|text| parse_uuid(&text, "tokens.lock_device")).transpose()?,
        lock_customer_id: row.opt_i64(at + 20)?,
    })
}

/// A row read with `DEVICE_COLUMNS`.
pub(super) fn device(row: &Row) -> Result<Device, StoreError> {
    Ok(Device {
        id: row.i64(0)?,
        uuid: uuid(row, 1, "devices.uuid")?,
        customer_id: row.i64(2)?,
        created: row.i64(3)?,
        device_type: parse_device_type(&row.text(4)?)?,
        pubkey: row.opt_text(5)?,
        lat: row.opt_f64(6)?,
        lon: row.opt_f64(7)?,
        refname: row.opt_text(8)?,
        info: row.opt_text(9)?,
    })
}

/// A row read with `CUSTOMER_COLUMNS`.
pub(super) fn customer(row: &Row) -> Result<Customer, StoreError> {
    Ok(Customer {
        id: row.i64(0)?,
        created: row.i64(1)?,
        email: row.text(2)?,
        display_name: row.opt_text(3)?,
        roles: row.text(4)?,
        status: row.i32(5)?,
        info: row.opt_text(6)?,
    })
}

/// A row read with `CREDENTIAL_COLUMNS`.
pub(super) fn credentials(row: &Row) -> Result<Credentials, StoreError> {
    Ok(Credentials { customer: customer(row)?, password_hash: row.opt_text(7)?, twofa_secret: row.opt_bytes(8)? })
}

/// A row read with `ACCESS_COLUMNS`.
pub(super) fn access(row: &Row) -> Result<Access, StoreError> {
    Ok(Access {
        id: row.i64(0)?,
        customer_id: row.i64(1)?,
        created: row.i64(2)?,
        scope: parse_scope(&row.text(3)?)?,
        apikey: row.text(4)?,
        secret_hash: row.bytes(5)?,
    })
}

/// A row read with `ACCESS_COLUMNS` and `secret_encrypted`.
pub(super) fn access_record(row: &Row) -> Result<AccessRecord, StoreError> {
    Ok(AccessRecord { access: access(row)?, secret_encrypted: row.opt_bytes(6)? })
}

/// A row read with `ACCOUNT_COLUMNS`.
pub(super) fn account(row: &Row) -> Result<Account, StoreError> {
    Ok(Account {
        id: row.i64(0)?,
        customer_id: row.i64(1)?,
        value: row.text(2)?,
        account_type: row.text(3)?,
        default: i32::from(row.i64(4)? != 0),
        symbol: row.opt_text(5)?,
        refname: row.opt_text(6)?,
    })
}

/// A row read with `EVENT_RECORD_COLUMNS`.
pub(super) fn event_record(row: &Row) -> Result<EventRecord, StoreError> {
    Ok(EventRecord {
        seq: row.i64(0)?,
        token: uuid(row, 1, "token_events.token_uuid")?,
        kind: parse_event_kind(&row.text(2)?)?,
        from: row.opt_text(3)?.map(|state| parse_token_state(&state, "token_events.from_state")).transpose()?,
        to: parse_token_state(&row.text(4)?, "token_events.to_state")?,
        at: row.i64(5)?,
        owner_id: row.i64(6)?,
        cash_customer_id: row.opt_i64(7)?,
        version: row.i64(8)?,
        snapshot: parse_json(&row.text(9)?, "token_events.payload")?,
    })
}

/// A `rows::clearing_rows_query` row: the token, then the clearing columns from [`CLEARING_AT`].
pub(super) fn clearing_row(row: &Row) -> Result<ClearingRow, StoreError> {
    let at = CLEARING_AT;
    Ok(ClearingRow {
        token: token(row, 0)?,
        date: row.i64(at)?,
        token_device_refname: row.opt_text(at + 1)?,
        lock_device_refname: row.opt_text(at + 2)?,
        debitor_id: row.i64(at + 3)?,
        creditor_id: row.i64(at + 4)?,
        debitor: json_opt(row, at + 5, "clearing.debitor_account")?,
        creditor: json_opt(row, at + 6, "clearing.creditor_account")?,
    })
}

/// A row read with `IDEMPOTENCY_COLUMNS`.
pub(super) fn idempotency_record(row: &Row) -> Result<IdempotencyRecord, StoreError> {
    Ok(IdempotencyRecord {
        key: IdempotencyKey {
            customer_id: row.i64(0)?,
            key: row.text(1)?,
            fingerprint: row.text(2)?,
            created: row.i64(3)?,
        },
        result: row.text(4)?,
    })
}
