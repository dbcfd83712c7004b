//! Every query of the [`Store`], written once for both backends (see `sql.rs`).
//!
//! Statements use `$n` placeholders; the few dialect differences (row locks, JSON functions)
//! come from [`Dialect`]. Reads run on a read connection, writes in one transaction each.

// `args!` builds a `Vec` also where a statement only borrows its parameters.
#![allow(clippy::useless_vec)]

use std::sync::LazyLock;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use serde_json::Value as Json;
use uuid::Uuid;

use super::decode::{self, device, token};
use super::entities;
use super::ledger::{self, AccountTransfer, EntryRange, LedgerEntry};
use super::rows::{
    self, BoundQuery, Dialect, JournalEventRow, ACCESS_COLUMNS, ACCOUNT_COLUMNS, CREDENTIAL_COLUMNS, CUSTOMER_COLUMNS,
    DEVICE_COLUMNS, HISTORY_BATCH, IDEMPOTENCY_COLUMNS, TOKEN_COLUMNS,
};
use super::sql::{args, Backend, Db, Job, Row, Value};
use super::{
    Access, AccessRecord, Account, ClearingQuery, ClearingRow, ClearingSum, Credentials, Customer, CustomerUpdate,
    DeviceStat, EventRecord, IdempotencyKey, IdempotencyRecord, JournalEntry, JournalQuery, NewAccount, NewCustomer,
    PoolUsage, Scope, Store, StoreError, StoredEntity, TokenFilter, TokenStat, WriteOutcome, WriteSet, IDEMPOTENCY_KEY,
    LIST_LIMIT_MAX,
};
use crate::clock::now_millis;
use crate::domain::ledger::{Account as LedgerAccount, AccountId, Owner, Transfer, TransferId};
use crate::domain::{CustomerId, Device, DeviceType, Millis, Token};

/// A [`Job`] from a closure; the bound lets the compiler see the closure's higher-ranked
/// signature (the future borrows the connection it is handed).
pub(super) fn job<T, F>(work: F) -> Job<T>
where
    F: for<'a> FnOnce(&'a mut dyn Db) -> BoxFuture<'a, Result<T, StoreError>> + Send + 'static,
{
    Box::new(work)
}

static INSERT_IDEMPOTENCY: LazyLock<String> = LazyLock::new(|| rows::insert_idempotency_sql(Dialect::Postgres));
static DEFAULT_RULE: LazyLock<String> = LazyLock::new(|| rows::default_rule_sql(Dialect::Postgres));

static LOAD_TOKEN: Statement = statement!("load_token", "SELECT {TOKEN_COLUMNS} FROM tokens WHERE uuid = $1");
static FIND_TOKEN_BY_PLAIN_CODE: Statement = statement!(
    "find_token_by_plain_code",
    "SELECT uuid FROM tokens WHERE plain_code = $1 AND state IN ('OPEN', 'LOCKED')"
);
static FIND_IDEMPOTENCY: Statement = statement!(
    "find_idempotency",
    "SELECT {IDEMPOTENCY_COLUMNS} FROM idempotency_keys WHERE customer_id = $1 AND idem_key = $2"
);
static LOAD_DEVICE: Statement = statement!("load_device", "SELECT {DEVICE_COLUMNS} FROM devices WHERE uuid = $1");
static LIST_DEVICES: Statement =
    statement!("list_devices", "SELECT {DEVICE_COLUMNS} FROM devices WHERE customer_id = $1 ORDER BY id LIMIT $2");
static LIST_CUSTOMERS: Statement =
    statement!("list_customers", "SELECT {CUSTOMER_COLUMNS} FROM customers ORDER BY id LIMIT $1");
static LOAD_CUSTOMER: Statement = statement!("load_customer", "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = $1");
static FIND_CUSTOMER_BY_EMAIL: Statement =
    statement!("find_customer_by_email", "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE email = $1");
static FIND_ACCESS: Statement = statement!("find_access", "SELECT {ACCESS_COLUMNS} FROM access WHERE apikey = $1");
static LOAD_PARAM: Statement =
    statement!("load_param", "SELECT pvalue FROM params WHERE customer_id = $1 AND pkey = $2");
static FIND_CREDENTIALS: Statement =
    statement!("find_credentials", "SELECT {CREDENTIAL_COLUMNS} FROM customers WHERE email = $1");
static LOAD_ACCESS: Statement =
    statement!("load_access", "SELECT {ACCESS_COLUMNS}, secret_encrypted FROM access WHERE id = $1");
static LOAD_DEVICE_BY_ID: Statement =
    statement!("load_device_by_id", "SELECT {DEVICE_COLUMNS} FROM devices WHERE id = $1");
static LOAD_ACCOUNT: Statement = statement!("load_account", "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1");
static DELETE_IDEMPOTENCY_BEFORE: Statement =
    statement!("delete_idempotency_before", "DELETE FROM idempotency_keys WHERE created < $1");
static DELETE_PARAM: Statement = statement!("delete_param", "DELETE FROM params WHERE customer_id = $1 AND pkey = $2");
static DELETE_ACCESS: Statement = statement!("delete_access", "DELETE FROM access WHERE customer_id = $1 AND id = $2");
static SET_PASSWORD: Statement =
    statement!("set_password", "UPDATE customers SET password_hash = $2, status = $3 WHERE id = $1");
static SET_TWOFA_SECRET: Statement =
    statement!("set_twofa_secret", "UPDATE customers SET twofa_secret = $2 WHERE id = $1");
static UPDATE_CUSTOMER: Statement =
    statement!("update_customer", "UPDATE customers SET display_name = $2, roles = $3, info = $4 WHERE email = $1");
static SET_ACCESS_SECRET_ENCRYPTED: Statement =
    statement!("set_access_secret_encrypted", "UPDATE access SET secret_encrypted = $2 WHERE id = $1");
static CREATE_ACCESS: Statement = statement!(
    "create_access",
    "INSERT INTO access (customer_id, created, scope, apikey, secret_hash) VALUES ($1, $2, $3, $4, $5) \
     RETURNING {ACCESS_COLUMNS}"
);
static CREATE_USER: Statement = statement!(
    "create_user",
    "INSERT INTO customers (created, email, display_name, roles, status, password_hash) \
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING {CUSTOMER_COLUMNS}"
);
static SAVE_PARAM: Statement = statement!(
    "save_param",
    "INSERT INTO params (customer_id, pkey, pvalue, updated) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (customer_id, pkey) DO UPDATE SET pvalue = excluded.pvalue, updated = excluded.updated"
);
static CREATE_CUSTOMER: Statement = statement!(
    "create_customer",
    "INSERT INTO customers (created, email, display_name, roles) VALUES ($1, $2, $3, $4) RETURNING {CUSTOMER_COLUMNS}"
);

fn first_token(row: &Row) -> Result<Token, StoreError> {
    token(row, 0)
}

fn uuid(row: &Row) -> Result<Uuid, StoreError> {
    rows::parse_uuid(&row.text(0)?, "tokens.uuid")
}

/// Run a bound query on a read connection and decode each row.
pub(super) async fn read_rows<B: Backend, T: Send + 'static>(
    backend: &B,
    what: &'static str,
    query: BoundQuery,
    decode: fn(&Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    backend
        .read(
            what,
            job(move |db| {
                Box::pin(async move { db.query(&query.sql, &query.values).await?.iter().map(decode).collect() })
            }),
        )
        .await
}

/// A statement and the name its errors carry.
pub(super) struct Statement {
    pub(super) what: &'static str,
    pub(super) sql: LazyLock<String>,
}

/// `statement!("name", "SQL with {COLUMNS}")`: the SQL is formatted once, on first use.
macro_rules! statement {
    ($what:literal, $sql:literal) => {
        Statement { what: $what, sql: std::sync::LazyLock::new(|| format!($sql)) }
    };
}
pub(super) use statement;

impl Statement {
    /// The first row it reads, decoded.
    pub(super) async fn first<B: Backend, T: Send + 'static>(
        &'static self,
        backend: &B,
        values: Vec<Value>,
        decode: fn(&Row) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let sql: &'static str = &self.sql;
        let work =
            job(move |db| Box::pin(async move { db.query_opt(sql, &values).await?.as_ref().map(decode).transpose() }));
        backend.read(self.what, work).await
    }

    /// Every row it reads, decoded.
    pub(super) async fn all<B: Backend, T: Send + 'static>(
        &'static self,
        backend: &B,
        values: Vec<Value>,
        decode: fn(&Row) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let sql: &'static str = &self.sql;
        let work = job(move |db| Box::pin(async move { db.query(sql, &values).await?.iter().map(decode).collect() }));
        backend.read(self.what, work).await
    }

    /// Execute it in its own transaction; rows changed.
    async fn run<B: Backend>(&'static self, backend: &B, values: Vec<Value>) -> Result<u64, StoreError> {
        let sql: &'static str = &self.sql;
        backend.write(self.what, job(move |db| Box::pin(async move { Ok(db.execute(sql, &values).await?) }))).await
    }

    /// Insert one row and decode what it returns; a unique violation is `Duplicate(unique)`.
    async fn insert<B: Backend, T: Send + 'static>(
        &'static self,
        backend: &B,
        values: Vec<Value>,
        decode: fn(&Row) -> Result<T, StoreError>,
        unique: &'static str,
    ) -> Result<T, StoreError> {
        let sql: &'static str = &self.sql;
        let work = job(move |db| {
            Box::pin(async move { decode(&db.query_one(sql, &values).await.map_err(|err| err.duplicate(unique))?) })
        });
        backend.write(self.what, work).await
    }
}

/// Execute one statement in its own transaction; rows changed.
async fn write_one<B: Backend>(
    backend: &B,
    what: &'static str,
    sql: String,
    values: Vec<Value>,
) -> Result<u64, StoreError> {
    backend.write(what, job(move |db| Box::pin(async move { Ok(db.execute(&sql, &values).await?) }))).await
}

/// Serialise the account changes of one customer: the default rule reads all its accounts.
/// On PostgreSQL `NO KEY UPDATE` does not block token inserts checking their owner's foreign
/// key; SQLite's write transaction holds the whole database already.
async fn lock_customer_accounts(db: &mut dyn Db, customer: CustomerId) -> Result<(), StoreError> {
    let sql = format!("SELECT 1 FROM customers WHERE id = $1{}", db.dialect().row_lock("NO KEY UPDATE"));
    db.query(&sql, &args![customer]).await?;
    Ok(())
}

async fn apply_default_rule(db: &mut dyn Db, customer: CustomerId) -> Result<(), StoreError> {
    db.execute(&DEFAULT_RULE, &args![customer]).await?;
    Ok(())
}

#[async_trait]
impl<B: Backend> Store for B {
    async fn commit(&self, sets: &[WriteSet]) -> Result<Vec<WriteOutcome>, StoreError> {
        self.commit_within_deadline(sets).await
    }

    fn commit_slots(&self) -> usize {
        self.commit_connections()
    }

    fn pool_usage(&self) -> Vec<PoolUsage> {
        self.connection_usage()
    }

    async fn load_token(&self, uuid: Uuid) -> Result<Option<Token>, StoreError> {
        LOAD_TOKEN.first(self, args![rows::uuid_text(uuid)], first_token).await
    }

    async fn find_token_by_plain_code(&self, plain_code: &str) -> Result<Option<Uuid>, StoreError> {
        FIND_TOKEN_BY_PLAIN_CODE.first(self, args![plain_code], uuid).await
    }

    async fn list_tokens(
        &self,
        owner: CustomerId,
        filter: &TokenFilter,
        limit: usize,
    ) -> Result<Vec<Token>, StoreError> {
        let mut query =
            BoundQuery { sql: format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE owner_id = $1"), values: args![owner] };
        for (column, value) in rows::token_filter_conditions(filter) {
            query.values.push(value);
            query.sql.push_str(&format!(" AND {column} = ${}", query.values.len()));
        }
        query.values.push(rows::list_limit(limit).into());
        query.sql.push_str(&format!(" ORDER BY seq LIMIT ${}", query.values.len()));
        read_rows(self, "list_tokens", query, first_token).await
    }

    async fn insert_device(&self, new: &Device, idempotency: Option<&IdempotencyKey>) -> Result<Device, StoreError> {
        let new = new.clone();
        let idempotency = idempotency.cloned();
        self.write(
            "insert_device",
            job(move |db| {
                Box::pin(async move {
                    let sql = format!(
                        "INSERT INTO devices (uuid, customer_id, created, type, pubkey, lat, lon, refname, info) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {DEVICE_COLUMNS}"
                    );
                    let values = args![
                        rows::uuid_text(new.uuid),
                        new.customer_id,
                        new.created,
                        new.device_type.as_str(),
                        new.pubkey,
                        new.lat,
                        new.lon,
                        new.refname,
                        new.info,
                    ];
                    let row = db.query_one(&sql, &values).await.map_err(|err| err.duplicate("device uuid"))?;
                    let stored = device(&row)?;
                    if let Some(key) = idempotency {
                        let result = rows::device_json(&stored)?;
                        let values = args![key.customer_id, key.key, key.fingerprint, key.created, result];
                        if db.execute(&INSERT_IDEMPOTENCY, &values).await? == 0 {
                            // The error rolls the device back.
                            return Err(StoreError::Duplicate(IDEMPOTENCY_KEY));
                        }
                    }
                    Ok(stored)
                })
            }),
        )
        .await
    }

    async fn find_idempotency(&self, customer: CustomerId, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        FIND_IDEMPOTENCY.first(self, args![customer, key], decode::idempotency_record).await
    }

    async fn delete_idempotency_before(&self, before: i64) -> Result<u64, StoreError> {
        DELETE_IDEMPOTENCY_BEFORE.run(self, args![before]).await
    }

    async fn load_device(&self, uuid: Uuid) -> Result<Option<Device>, StoreError> {
        LOAD_DEVICE.first(self, args![rows::uuid_text(uuid)], device).await
    }

    async fn list_devices(&self, customer: CustomerId, limit: usize) -> Result<Vec<Device>, StoreError> {
        LIST_DEVICES.all(self, args![customer, rows::list_limit(limit)], device).await
    }

    async fn create_customer(&self, customer: &NewCustomer) -> Result<Customer, StoreError> {
        let values =
            args![now_millis(), rows::fold_case(&customer.email), customer.display_name.clone(), &customer.roles];
        CREATE_CUSTOMER.insert(self, values, decode::customer, "email").await
    }

    async fn load_customer(&self, id: CustomerId) -> Result<Option<Customer>, StoreError> {
        LOAD_CUSTOMER.first(self, args![id], decode::customer).await
    }

    async fn find_customer_by_email(&self, email: &str) -> Result<Option<Customer>, StoreError> {
        FIND_CUSTOMER_BY_EMAIL.first(self, args![rows::fold_case(email)], decode::customer).await
    }

    async fn create_access(
        &self,
        customer: CustomerId,
        scope: Scope,
        apikey: &str,
        secret_hash: &[u8],
    ) -> Result<Access, StoreError> {
        let values = args![customer, now_millis(), scope.as_str(), rows::fold_case(apikey), secret_hash];
        CREATE_ACCESS.insert(self, values, decode::access, "apikey").await
    }

    async fn find_access(&self, apikey: &str) -> Result<Option<Access>, StoreError> {
        FIND_ACCESS.first(self, args![rows::fold_case(apikey)], decode::access).await
    }

    async fn load_param(&self, customer: CustomerId, key: &str) -> Result<Option<Json>, StoreError> {
        LOAD_PARAM.first(self, args![customer, key], |row| rows::parse_json(&row.text(0)?, "params.pvalue")).await
    }

    async fn save_param(&self, customer: CustomerId, key: &str, value: &Json) -> Result<(), StoreError> {
        SAVE_PARAM.run(self, args![customer, key, rows::json_text(value)?, now_millis()]).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        read_rows(self, "ping", BoundQuery { sql: "SELECT 1".into(), values: Vec::new() }, |_| Ok(())).await?;
        Ok(())
    }

    async fn delete_param(&self, customer: CustomerId, key: &str) -> Result<u64, StoreError> {
        DELETE_PARAM.run(self, args![customer, key]).await
    }

    async fn find_credentials(&self, email: &str) -> Result<Option<Credentials>, StoreError> {
        FIND_CREDENTIALS.first(self, args![rows::fold_case(email)], decode::credentials).await
    }

    async fn create_user(&self, user: &NewCustomer, password_hash: &str, status: i32) -> Result<Customer, StoreError> {
        let values = args![
            now_millis(),
            rows::fold_case(&user.email),
            user.display_name.clone(),
            &user.roles,
            status,
            password_hash
        ];
        CREATE_USER.insert(self, values, decode::customer, "email").await
    }

    async fn set_password(&self, customer: CustomerId, password_hash: &str, status: i32) -> Result<(), StoreError> {
        SET_PASSWORD.run(self, args![customer, password_hash, status]).await?;
        Ok(())
    }

    async fn set_twofa_secret(&self, customer: CustomerId, secret: Option<&[u8]>) -> Result<(), StoreError> {
        SET_TWOFA_SECRET.run(self, args![customer, secret]).await?;
        Ok(())
    }

    async fn list_customers(&self) -> Result<Vec<Customer>, StoreError> {
        LIST_CUSTOMERS.all(self, args![rows::list_limit(LIST_LIMIT_MAX)], decode::customer).await
    }

    async fn update_customer(&self, email: &str, update: &CustomerUpdate) -> Result<u64, StoreError> {
        let values =
            args![rows::fold_case(email), update.display_name.clone(), update.roles.clone(), update.info.clone()];
        UPDATE_CUSTOMER.run(self, values).await
    }

    async fn delete_customer(&self, email: &str) -> Result<u64, StoreError> {
        let email = rows::fold_case(email);
        self.write(
            "delete_customer",
            job(move |db| {
                Box::pin(async move {
                    let sql = "DELETE FROM customers WHERE email = $1";
                    db.execute(sql, &args![email]).await.map_err(|err| err.referenced("customer"))
                })
            }),
        )
        .await
    }

    async fn set_access_secret_encrypted(&self, access: i64, encrypted: &[u8]) -> Result<(), StoreError> {
        SET_ACCESS_SECRET_ENCRYPTED.run(self, args![access, encrypted]).await?;
        Ok(())
    }

    async fn load_access(&self, id: i64) -> Result<Option<AccessRecord>, StoreError> {
        LOAD_ACCESS.first(self, args![id], decode::access_record).await
    }

    async fn list_access(&self, customer: CustomerId, scope: Scope) -> Result<Vec<AccessRecord>, StoreError> {
        let query = BoundQuery {
            sql: format!(
                "SELECT {ACCESS_COLUMNS}, secret_encrypted FROM access WHERE customer_id = $1 AND scope = $2 ORDER BY id LIMIT $3"
            ),
            values: args![customer, scope.as_str(), rows::list_limit(LIST_LIMIT_MAX)],
        };
        read_rows(self, "list_access", query, decode::access_record).await
    }

    async fn delete_access(&self, customer: CustomerId, id: i64) -> Result<u64, StoreError> {
        DELETE_ACCESS.run(self, args![customer, id]).await
    }

    async fn load_device_by_id(&self, id: i64) -> Result<Option<Device>, StoreError> {
        LOAD_DEVICE_BY_ID.first(self, args![id], device).await
    }

    async fn update_device(
        &self,
        customer: CustomerId,
        id: i64,
        device_type: Option<DeviceType>,
        refname: Option<Option<String>>,
    ) -> Result<u64, StoreError> {
        let query = rows::update_device_query(self.dialect(), customer, id, device_type, refname)
            .ok_or_else(|| StoreError::Internal(anyhow::anyhow!("update_device: no field to update")))?;
        write_one(self, "update_device", query.sql, query.values).await
    }

    async fn delete_device(&self, customer: CustomerId, id: i64) -> Result<u64, StoreError> {
        self.write(
            "delete_device",
            job(move |db| {
                Box::pin(async move {
                    let sql = format!(
                        "SELECT uuid FROM devices WHERE customer_id = $1 AND id = $2{}",
                        db.dialect().row_lock("UPDATE")
                    );
                    let Some(row) = db.query_opt(&sql, &args![customer, id]).await? else {
                        return Ok(0);
                    };
                    let uuid = row.text(0)?;
                    let referenced = db
                        .query_one(
                            "SELECT EXISTS (SELECT 1 FROM tokens WHERE owner_device = $1) \
                             OR EXISTS (SELECT 1 FROM tokens WHERE lock_device = $1)",
                            &args![uuid],
                        )
                        .await?
                        .i64(0)?;
                    if referenced != 0 {
                        return Err(StoreError::Referenced("device"));
                    }
                    Ok(db.execute("DELETE FROM devices WHERE id = $1", &args![id]).await?)
                })
            }),
        )
        .await
    }

    async fn device_stats(&self) -> Result<Vec<DeviceStat>, StoreError> {
        let query = BoundQuery {
            sql: "SELECT c.email, d.type, d.refname FROM devices d JOIN customers c ON c.id = d.customer_id \
                  ORDER BY d.id LIMIT $1"
                .into(),
            values: args![rows::list_limit(LIST_LIMIT_MAX)],
        };
        read_rows(self, "device_stats", query, |row| {
            Ok(DeviceStat {
                email: row.text(0)?,
                device_type: rows::parse_device_type(&row.text(1)?)?,
                refname: row.opt_text(2)?,
            })
        })
        .await
    }

    async fn insert_account(&self, customer: CustomerId, account: &NewAccount) -> Result<Account, StoreError> {
        let account = account.clone();
        self.write(
            "insert_account",
            job(move |db| {
                Box::pin(async move {
                    lock_customer_accounts(db, customer).await?;
                    let values = args![
                        customer,
                        account.value,
                        account.account_type,
                        rows::default_flag(account.default),
                        account.symbol,
                        account.refname,
                    ];
                    let id = db
                        .query_one(
                            "INSERT INTO accounts (customer_id, value, type, is_default, symbol, refname) \
                             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                            &values,
                        )
                        .await?
                        .i64(0)?;
                    apply_default_rule(db, customer).await?;
                    decode::account(&db.query_one(&LOAD_ACCOUNT.sql, &args![id]).await?)
                })
            }),
        )
        .await
    }

    async fn list_accounts(&self, customer: CustomerId, default: Option<bool>) -> Result<Vec<Account>, StoreError> {
        let query = rows::list_accounts_query(self.dialect(), customer, default);
        read_rows(self, "list_accounts", query, decode::account).await
    }

    async fn load_account(&self, id: i64) -> Result<Option<Account>, StoreError> {
        LOAD_ACCOUNT.first(self, args![id], decode::account).await
    }

    async fn update_account(
        &self,
        customer: CustomerId,
        account: &Account,
        make_default: bool,
    ) -> Result<u64, StoreError> {
        let account = account.clone();
        self.write(
            "update_account",
            job(move |db| {
                Box::pin(async move {
                    lock_customer_accounts(db, customer).await?;
                    let values = args![
                        customer,
                        account.id,
                        account.value,
                        account.account_type,
                        rows::default_flag(make_default || account.default != 0),
                        account.symbol,
                        account.refname,
                    ];
                    let matched = db
                        .execute(
                            "UPDATE accounts SET value = $3, type = $4, is_default = $5, symbol = $6, refname = $7 \
                             WHERE customer_id = $1 AND id = $2",
                            &values,
                        )
                        .await?;
                    if matched == 0 {
                        return Ok(0);
                    }
                    if make_default {
                        let sql = "UPDATE accounts SET is_default = 0 WHERE customer_id = $1 AND id <> $2";
                        db.execute(sql, &args![customer, account.id]).await?;
                    }
                    apply_default_rule(db, customer).await?;
                    Ok(matched)
                })
            }),
        )
        .await
    }

    async fn delete_account(&self, customer: CustomerId, id: i64) -> Result<u64, StoreError> {
        self.write(
            "delete_account",
            job(move |db| {
                Box::pin(async move {
                    lock_customer_accounts(db, customer).await?;
                    let deleted = db
                        .execute("DELETE FROM accounts WHERE customer_id = $1 AND id = $2", &args![customer, id])
                        .await?;
                    apply_default_rule(db, customer).await?;
                    Ok(deleted)
                })
            }),
        )
        .await
    }

    async fn token_stats(&self, customer: Option<CustomerId>) -> Result<Vec<TokenStat>, StoreError> {
        read_rows(self, "token_stats", rows::token_stats_query(self.dialect(), customer), |row| {
            Ok(TokenStat {
                state: rows::parse_token_state(&row.text(0)?, "tokens.state")?,
                token_type: rows::parse_token_type(&row.text(1)?)?,
                amount: rows::exact_sum_value(row.i64(2)?, row.i64(3)?),
                count: row.i64(4)?,
            })
        })
        .await
    }

    async fn journal(&self, query: &JournalQuery) -> Result<Vec<JournalEntry>, StoreError> {
        let rows =
            read_rows(self, "journal", rows::journal_query(self.dialect(), query), JournalEventRow::read).await?;
        rows::journal_entries(rows, query)
    }

    async fn clearing_rows(&self, query: &ClearingQuery) -> Result<Vec<ClearingRow>, StoreError> {
        read_rows(self, "clearing_rows", rows::clearing_rows_query(self.dialect(), query), decode::clearing_row).await
    }

    async fn clearing_sums(&self, query: &ClearingQuery) -> Result<Vec<ClearingSum>, StoreError> {
        read_rows(self, "clearing_sums", rows::clearing_sums_query(self.dialect(), query), |row| {
            Ok(ClearingSum {
                token_type: rows::parse_token_type(&row.text(0)?)?,
                symbol: row.text(1)?,
                debitor_id: row.i64(2)?,
                creditor_id: row.i64(3)?,
                count: row.i64(4)?,
                amount: rows::exact_sum_value(row.i64(5)?, row.i64(6)?),
            })
        })
        .await
    }

    async fn events_after(
        &self,
        customer: Option<CustomerId>,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let query = rows::events_after_query(self.dialect(), customer, after_seq, limit);
        read_rows(self, "events_after", query, decode::event_record).await
    }

    async fn last_event_seq(&self) -> Result<i64, StoreError> {
        let query = BoundQuery {
            sql: "SELECT CAST(COALESCE(MAX(seq), 0) AS BIGINT) FROM token_events".into(),
            values: Vec::new(),
        };
        Ok(read_rows(self, "last_event_seq", query, |row| row.i64(0)).await?.into_iter().next().unwrap_or(0))
    }

    async fn due_expiries(&self, now: i64, limit: usize) -> Result<Vec<Uuid>, StoreError> {
        let query = BoundQuery {
            sql: "SELECT uuid FROM tokens WHERE state = 'OPEN' AND expires < $1 ORDER BY expires, seq LIMIT $2".into(),
            values: args![now, rows::list_limit(limit)],
        };
        read_rows(self, "due_expiries", query, uuid).await
    }

    async fn delete_history(&self, before: i64) -> Result<u64, StoreError> {
        // One batch per transaction, so that the writer's commits interleave: tokens in a final
        // state, their events and their clearing rows.
        let batch = i64::try_from(HISTORY_BATCH).unwrap_or(i64::MAX);
        let mut removed = 0_u64;
        loop {
            let deleted = self
                .write(
                    "delete_history",
                    job(move |db| {
                        Box::pin(async move {
                            let doomed = db
                                .query(
                                    "SELECT uuid FROM tokens WHERE created < $1 AND state NOT IN ('OPEN', 'LOCKED') \
                                     ORDER BY created LIMIT $2",
                                    &args![before, batch],
                                )
                                .await?
                                .iter()
                                .map(|row| row.text(0))
                                .collect::<Result<Vec<_>, _>>()?;
                            let list = serde_json::to_string(&doomed)
                                .map_err(|err| StoreError::Internal(anyhow::anyhow!("delete_history: {err}")))?;
                            let within = db.dialect().in_json_text_array("token_uuid", "$1");
                            db.execute(&format!("DELETE FROM token_events WHERE {within}"), &args![list.clone()])
                                .await?;
                            db.execute(&format!("DELETE FROM clearing WHERE {within}"), &args![list.clone()]).await?;
                            let within = db.dialect().in_json_text_array("uuid", "$1");
                            Ok(db.execute(&format!("DELETE FROM tokens WHERE {within}"), &args![list]).await?)
                        })
                    }),
                )
                .await?;
            removed += deleted;
            if deleted < HISTORY_BATCH as u64 {
                return Ok(removed);
            }
        }
    }

    async fn load_ledger_account(&self, id: AccountId) -> Result<Option<LedgerAccount>, StoreError> {
        ledger::load_account(self, id).await
    }

    async fn ledger_accounts_of_customer(
        &self,
        customer: CustomerId,
        after: Option<AccountId>,
        limit: usize,
    ) -> Result<Vec<LedgerAccount>, StoreError> {
        ledger::accounts_of_customer(self, customer, after, limit).await
    }

    async fn ledger_accounts_of_owner(
        &self,
        owner: &Owner,
        after: Option<AccountId>,
        limit: usize,
    ) -> Result<Vec<LedgerAccount>, StoreError> {
        ledger::accounts_of_owner(self, owner, after, limit).await
    }

    async fn load_ledger_transfer(&self, id: TransferId) -> Result<Option<Transfer>, StoreError> {
        ledger::load_transfer(self, id).await
    }

    async fn load_ledger_transfers(&self, ids: &[TransferId]) -> Result<Vec<Transfer>, StoreError> {
        ledger::load_transfers(self, ids).await
    }

    async fn due_ledger_holds(&self, now: Millis, limit: usize) -> Result<Vec<Transfer>, StoreError> {
        ledger::due_holds(self, now, limit).await
    }

    async fn ledger_account_entries(
        &self,
        account: AccountId,
        range: EntryRange,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        ledger::account_entries(self, account, range).await
    }

    async fn ledger_entry_before(&self, account: AccountId, at: Millis) -> Result<Option<LedgerEntry>, StoreError> {
        ledger::entry_before(self, account, at).await
    }

    async fn ledger_account_transfers(
        &self,
        account: AccountId,
        range: EntryRange,
    ) -> Result<Vec<AccountTransfer>, StoreError> {
        ledger::account_transfers(self, account, range).await
    }

    async fn ledger_account_latest_transfers(
        &self,
        account: AccountId,
        limit: usize,
    ) -> Result<Vec<AccountTransfer>, StoreError> {
        ledger::latest_account_transfers(self, account, limit).await
    }

    async fn ledger_entries_after(
        &self,
        customer: Option<CustomerId>,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        ledger::entries_after(self, customer, after_seq, limit).await
    }

    async fn last_ledger_entry_seq(&self) -> Result<i64, StoreError> {
        ledger::last_entry_seq(self).await
    }

    async fn pending_ledger_holds(&self) -> Result<i64, StoreError> {
        ledger::pending_holds(self).await
    }

    async fn load_entity(&self, kind: &'static str, id: &str) -> Result<Option<StoredEntity>, StoreError> {
        entities::load(self, kind, id).await
    }

    async fn find_entities(
        &self,
        kind: &'static str,
        column: &'static str,
        value: &str,
        limit: usize,
    ) -> Result<Vec<StoredEntity>, StoreError> {
        entities::find(self, kind, column, value, limit).await
    }

    async fn entity_events(&self, kind: &'static str, id: &str, limit: usize) -> Result<Vec<Json>, StoreError> {
        entities::events(self, kind, id, limit).await
    }
}

/// What tests read that the engine never needs.
#[doc(hidden)]
#[async_trait]
pub trait Inspection {
    /// Number of `token_events` rows.
    async fn count_events(&self) -> Result<i64, StoreError>;
    /// The stored account snapshots of every clearing row, as text, in clearing order.
    async fn clearing_account_texts(&self) -> Result<Vec<(Option<String>, Option<String>)>, StoreError>;
}

#[async_trait]
impl<B: Backend> Inspection for B {
    async fn count_events(&self) -> Result<i64, StoreError> {
        let query = BoundQuery { sql: "SELECT COUNT(*) FROM token_events".into(), values: Vec::new() };
        Ok(read_rows(self, "count_events", query, |row| row.i64(0)).await?.into_iter().next().unwrap_or(0))
    }

    async fn clearing_account_texts(&self) -> Result<Vec<(Option<String>, Option<String>)>, StoreError> {
        let query = BoundQuery {
            sql: "SELECT debitor_account, creditor_account FROM clearing ORDER BY id".into(),
            values: Vec::new(),
        };
        read_rows(self, "clearing_account_texts", query, |row| Ok((row.opt_text(0)?, row.opt_text(1)?))).await
    }
}
