//! Deadlines on every store call: a database that stops answering (a hung server, a network
//! partition) must not hold requests, actors or the writer forever.
//!
//! A read that misses its deadline is `Unavailable` (503: nothing changed). A write that
//! misses it is `OutcomeUnknown`: it was handed to the database and may still take effect, so
//! it is never reported as "not done". Backends keep their pool waits shorter than this
//! deadline, so a call that never reached the database fails as `Unavailable` first.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use uuid::Uuid;

use super::{
    Access, AccessRecord, Account, ClearingQuery, ClearingRow, ClearingSum, Credentials, Customer,
    CustomerUpdate, DeviceStat, EventRecord, IdempotencyKey, IdempotencyRecord, JournalEntry,
    JournalQuery, NewAccount, NewCustomer, PoolUsage, Scope, Store, StoreError, TokenFilter,
    TokenStat, WriteOutcome, WriteSet,
};
use crate::domain::{CustomerId, Device, Token};

/// A store whose every call ends by `timeout`.
pub struct DeadlineStore {
    inner: Arc<dyn Store>,
    timeout: Duration,
}

impl DeadlineStore {
    pub fn new(inner: Arc<dyn Store>, timeout: Duration) -> Self {
        Self { inner, timeout }
    }

    async fn read<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(format!(
                    "{what}: no answer within {:?}",
                    self.timeout
                )))
            })
    }

    async fn write<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::OutcomeUnknown(format!(
                    "{what}: no answer within {:?}",
                    self.timeout
                )))
            })
    }
}

#[async_trait]
impl Store for DeadlineStore {
    fn commit_slots(&self) -> usize {
        self.inner.commit_slots()
    }

    fn pool_usage(&self) -> Vec<PoolUsage> {
        self.inner.pool_usage()
    }

    async fn commit(&self, sets: &[WriteSet]) -> Result<Vec<WriteOutcome>, StoreError> {
        self.write("commit", self.inner.commit(sets)).await
    }

    async fn load_token(&self, uuid: Uuid) -> Result<Option<Token>, StoreError> {
        self.read("load_token", self.inner.load_token(uuid)).await
    }

    async fn find_token_by_plain_code(&self, plain_code: &str) -> Result<Option<Uuid>, StoreError> {
        self.read(
            "find_token_by_plain_code",
            self.inner.find_token_by_plain_code(plain_code),
        )
        .await
    }

    async fn list_tokens(
        &self,
        owner: CustomerId,
        filter: &TokenFilter,
        limit: usize,
    ) -> Result<Vec<Token>, StoreError> {
        self.read("list_tokens", self.inner.list_tokens(owner, filter, limit))
            .await
    }

    async fn insert_device(
        &self,
        device: &Device,
        idempotency: Option<&IdempotencyKey>,
    ) -> Result<Device, StoreError> {
        self.write(
            "insert_device",
            self.inner.insert_device(device, idempotency),
        )
        .await
    }

    async fn find_idempotency(
        &self,
        customer: CustomerId,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.read(
            "find_idempotency",
            self.inner.find_idempotency(customer, key),
        )
        .await
    }

    async fn delete_idempotency_before(&self, before: i64) -> Result<u64, StoreError> {
        self.write(
            "delete_idempotency_before",
            self.inner.delete_idempotency_before(before),
        )
        .await
    }

    async fn load_device(&self, uuid: Uuid) -> Result<Option<Device>, StoreError> {
        self.read("load_device", self.inner.load_device(uuid)).await
    }

    async fn list_devices(
        &self,
        customer: CustomerId,
        limit: usize,
    ) -> Result<Vec<Device>, StoreError> {
        self.read("list_devices", self.inner.list_devices(customer, limit))
            .await
    }

    async fn create_customer(&self, customer: &NewCustomer) -> Result<Customer, StoreError> {
        self.write("create_customer", self.inner.create_customer(customer))
            .await
    }

    async fn load_customer(&self, id: CustomerId) -> Result<Option<Customer>, StoreError> {
        self.read("load_customer", self.inner.load_customer(id))
            .await
    }

    async fn find_customer_by_email(&self, email: &str) -> Result<Option<Customer>, StoreError> {
        self.read(
            "find_customer_by_email",
            self.inner.find_customer_by_email(email),
        )
        .await
    }

    async fn create_access(
        &self,
        customer: CustomerId,
        scope: Scope,
        apikey: &str,
        secret_hash: &[u8],
    ) -> Result<Access, StoreError> {
        self.write(
            "create_access",
            self.inner
                .create_access(customer, scope, apikey, secret_hash),
        )
        .await
    }

    async fn find_access(&self, apikey: &str) -> Result<Option<Access>, StoreError> {
        self.read("find_access", self.inner.find_access(apikey))
            .await
    }

    async fn load_param(
        &self,
        customer: CustomerId,
        key: &str,
    ) -> Result<Option<Value>, StoreError> {
        self.read("load_param", self.inner.load_param(customer, key))
            .await
    }

    async fn save_param(
        &self,
        customer: CustomerId,
        key: &str,
        value: &Value,
    ) -> Result<(), StoreError> {
        self.write("save_param", self.inner.save_param(customer, key, value))
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read("ping", self.inner.ping()).await
    }

    async fn delete_param(&self, customer: CustomerId, key: &str) -> Result<u64, StoreError> {
        self.write("delete_param", self.inner.delete_param(customer, key))
            .await
    }

    async fn find_credentials(&self, email: &str) -> Result<Option<Credentials>, StoreError> {
        self.read("find_credentials", self.inner.find_credentials(email))
            .await
    }

    async fn create_user(
        &self,
        user: &NewCustomer,
        password_hash: &str,
        status: i32,
    ) -> Result<Customer, StoreError> {
        self.write(
            "create_user",
            self.inner.create_user(user, password_hash, status),
        )
        .await
    }

    async fn set_password(
        &self,
        customer: CustomerId,
        password_hash: &str,
        status: i32,
    ) -> Result<(), StoreError> {
        self.write(
            "set_password",
            self.inner.set_password(customer, password_hash, status),
        )
        .await
    }

    async fn set_twofa_secret(
        &self,
        customer: CustomerId,
        secret: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        self.write(
            "set_twofa_secret",
            self.inner.set_twofa_secret(customer, secret),
        )
        .await
    }

    async fn list_customers(&self) -> Result<Vec<Customer>, StoreError> {
        self.read("list_customers", self.inner.list_customers())
            .await
    }

    async fn update_customer(
        &self,
        email: &str,
        update: &CustomerUpdate,
    ) -> Result<u64, StoreError> {
        self.write("update_customer", self.inner.update_customer(email, update))
            .await
    }

    async fn delete_customer(&self, email: &str) -> Result<u64, StoreError> {
        self.write("delete_customer", self.inner.delete_customer(email))
            .await
    }

    async fn set_access_secret_encrypted(
        &self,
        access: i64,
        encrypted: &[u8],
    ) -> Result<(), StoreError> {
        self.write(
            "set_access_secret_encrypted",
            self.inner.set_access_secret_encrypted(access, encrypted),
        )
        .await
    }

    async fn load_access(&self, id: i64) -> Result<Option<AccessRecord>, StoreError> {
        self.read("load_access", self.inner.load_access(id)).await
    }

    async fn list_access(
        &self,
        customer: CustomerId,
        scope: Scope,
    ) -> Result<Vec<AccessRecord>, StoreError> {
        self.read("list_access", self.inner.list_access(customer, scope))
            .await
    }

    async fn delete_access(&self, customer: CustomerId, id: i64) -> Result<u64, StoreError> {
        self.write("delete_access", self.inner.delete_access(customer, id))
            .await
    }

    async fn load_device_by_id(&self, id: i64) -> Result<Option<Device>, StoreError> {
        self.read("load_device_by_id", self.inner.load_device_by_id(id))
            .await
    }

    async fn update_device(
        &self,
        customer: CustomerId,
        id: i64,
        device_type: Option<crate::domain::DeviceType>,
        refname: Option<Option<String>>,
    ) -> Result<u64, StoreError> {
        self.write(
            "update_device",
            self.inner.update_device(customer, id, device_type, refname),
        )
        .await
    }

    async fn delete_device(&self, customer: CustomerId, id: i64) -> Result<u64, StoreError> {
        self.write("delete_device", self.inner.delete_device(customer, id))
            .await
    }

    async fn device_stats(&self) -> Result<Vec<DeviceStat>, StoreError> {
        self.read("device_stats", self.inner.device_stats()).await
    }

    async fn insert_account(
        &self,
        customer: CustomerId,
        account: &NewAccount,
    ) -> Result<Account, StoreError> {
        self.write(
            "insert_account",
            self.inner.insert_account(customer, account),
        )
        .await
    }

    async fn list_accounts(
        &self,
        customer: CustomerId,
        default: Option<bool>,
    ) -> Result<Vec<Account>, StoreError> {
        self.read("list_accounts", self.inner.list_accounts(customer, default))
            .await
    }

    async fn load_account(&self, id: i64) -> Result<Option<Account>, StoreError> {
        self.read("load_account", self.inner.load_account(id)).await
    }

    async fn update_account(
        &self,
        customer: CustomerId,
        account: &Account,
        make_default: bool,
    ) -> Result<u64, StoreError> {
        self.write(
            "update_account",
            self.inner.update_account(customer, account, make_default),
        )
        .await
    }

    async fn delete_account(&self, customer: CustomerId, id: i64) -> Result<u64, StoreError> {
        self.write("delete_account", self.inner.delete_account(customer, id))
            .await
    }

    async fn token_stats(
        &self,
        customer: Option<CustomerId>,
    ) -> Result<Vec<TokenStat>, StoreError> {
        self.read("token_stats", self.inner.token_stats(customer))
            .await
    }

    async fn journal(&self, query: &JournalQuery) -> Result<Vec<JournalEntry>, StoreError> {
        self.read("journal", self.inner.journal(query)).await
    }

    async fn clearing_rows(&self, query: &ClearingQuery) -> Result<Vec<ClearingRow>, StoreError> {
        self.read("clearing_rows", self.inner.clearing_rows(query))
            .await
    }

    async fn clearing_sums(&self, query: &ClearingQuery) -> Result<Vec<ClearingSum>, StoreError> {
        self.read("clearing_sums", self.inner.clearing_sums(query))
            .await
    }

    async fn events_after(
        &self,
        customer: Option<CustomerId>,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        self.read(
            "events_after",
            self.inner.events_after(customer, after_seq, limit),
        )
        .await
    }

    async fn last_event_seq(&self) -> Result<i64, StoreError> {
        self.read("last_event_seq", self.inner.last_event_seq())
            .await
    }

    async fn due_expiries(&self, now: i64, limit: usize) -> Result<Vec<Uuid>, StoreError> {
        self.read("due_expiries", self.inner.due_expiries(now, limit))
            .await
    }

    async fn delete_history(&self, before: i64) -> Result<u64, StoreError> {
        self.write("delete_history", self.inner.delete_history(before))
            .await
    }
}
