//! Customers and what belongs to them: logins (password hashing), API credentials (keyed hash
//! and sealed secret) and parameters. The portal and the `cashgrid` CLI both call these, so each
//! operation exists once. They need only the store — no actors, writer or background tasks — so
//! a one-shot CLI command builds a [`Customers`] without starting the engine. The operations on
//! API secrets take the server key's [`SecretHasher`] as an argument: only they need it, and a
//! CLI command that does not (a parameter, a password) must not read or create the key file.
//! Refusals are the portal's ([`PortalRejection`]); each caller words them its way.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Semaphore;

use super::portal::{PortalError, PortalRejection};
use super::EngineError;
use crate::crypto::password::{hash_password, new_initial_password, password_is_acceptable, verify_password};
use crate::crypto::{new_api_credential, SecretHasher};
use crate::domain::CustomerId;
use crate::metrics as m;
use crate::store::{Access, AccessRecord, Customer, NewCustomer, Scope, Store, StoreError};

/// Password hashes computed at once; further requests wait, at most the hashing wait, for a
/// slot. argon2id costs ~19 MiB and tens of milliseconds per hash.
pub const PASSWORD_HASHING_CONCURRENCY: usize = 4;
/// Attempts at drawing an API key that is not taken yet.
const APIKEY_ATTEMPTS: usize = 5;
/// Roles of users created by registration, by an admin or by the CLI without `--admin`.
pub const USER_ROLES: &str = "user";
/// Roles of an administrator.
pub const ADMIN_ROLES: &str = "user,admin";
/// Customer status: 0 asks the portal UI for a password change, 1 is normal.
pub const STATUS_MUST_CHANGE_PASSWORD: i32 = 0;
pub const STATUS_OK: i32 = 1;

/// The password a login gets: one its user chose, or a random initial one to hand over, which
/// the portal UI asks to change at first login. Never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct NewPassword {
    text: String,
    initial: bool,
}

impl NewPassword {
    /// A chosen password, if it is long enough ([`PortalRejection::BadNewPassword`] if not).
    pub fn chosen(text: String) -> Result<Self, PortalRejection> {
        if password_is_acceptable(&text) {
            Ok(Self { text, initial: false })
        } else {
            Err(PortalRejection::BadNewPassword)
        }
    }

    /// A fresh random initial password.
    pub fn initial() -> Self {
        Self { text: new_initial_password(), initial: true }
    }

    /// The password given, checked, or else a fresh initial one.
    pub fn given_or_initial(text: Option<String>) -> Result<Self, PortalRejection> {
        text.map_or_else(|| Ok(Self::initial()), Self::chosen)
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The generated password to hand over; `None` for a chosen one.
    pub fn initial_password(&self) -> Option<&str> {
        self.initial.then_some(self.text.as_str())
    }

    /// The customer status that goes with it.
    pub fn status(&self) -> i32 {
        if self.initial {
            STATUS_MUST_CHANGE_PASSWORD
        } else {
            STATUS_OK
        }
    }
}

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("NewPassword").field("initial", &self.initial).finish_non_exhaustive()
    }
}

/// New API credentials with their secret, which exists in clear text only here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedAccess {
    pub access: Access,
    pub apisecret: String,
}

pub(super) fn sealing_fault(error: crate::crypto::SealError) -> EngineError {
    tracing::error!(%error, "sealed secret");
    EngineError::Internal(error.to_string())
}

/// The customer operations shared by the portal and the CLI (module docs).
pub struct Customers {
    store: Arc<dyn Store>,
    hashing: Semaphore,
    hashing_wait: Duration,
}

impl Customers {
    /// `hashing_wait`: the longest a caller waits for a password-hashing slot before it is
    /// refused as overloaded (the engine's send timeout).
    pub fn new(store: Arc<dyn Store>, hashing_wait: Duration) -> Self {
        Self { store, hashing: Semaphore::new(PASSWORD_HASHING_CONCURRENCY), hashing_wait }
    }

    pub async fn customer_by_email(&self, email: &str) -> Result<Option<Customer>, EngineError> {
        Ok(self.store.find_customer_by_email(email).await?)
    }

    /// A customer without a login (the CLI's `customer create`); `EmailInUse` if one exists.
    pub async fn create_customer(&self, new: &NewCustomer) -> Result<Customer, PortalError> {
        match self.store.create_customer(new).await {
            Err(StoreError::Duplicate(_)) => Err(PortalRejection::EmailInUse.into()),
            other => Ok(other?),
        }
    }

    /// A customer with a login; `EmailInUse` if one exists.
    pub async fn create_user(&self, new: &NewCustomer, password: &NewPassword) -> Result<Customer, PortalError> {
        let hash = self.password_hash(password.text.clone()).await?;
        match self.store.create_user(new, &hash, password.status()).await {
            Err(StoreError::Duplicate(_)) => Err(PortalRejection::EmailInUse.into()),
            other => Ok(other?),
        }
    }

    /// Give a customer a new password (and the status that goes with it).
    pub async fn set_password(&self, customer: CustomerId, password: &NewPassword) -> Result<(), EngineError> {
        let hash = self.password_hash(password.text.clone()).await?;
        Ok(self.store.set_password(customer, &hash, password.status()).await?)
    }

    /// New credentials of `scope` for `customer`. The secret is kept as a keyed hash (for
    /// authentication) and sealed (so that its owner can reveal it in the portal).
    pub async fn create_access(
        &self,
        hasher: &SecretHasher,
        customer: CustomerId,
        scope: Scope,
    ) -> Result<CreatedAccess, EngineError> {
        let apisecret = new_api_credential();
        let secret_hash = hasher.api_secret_hash(&apisecret);
        let sealer = hasher.sealer();
        for _ in 0..APIKEY_ATTEMPTS {
            let apikey = new_api_credential();
            let access = match self.store.create_access(customer, scope, &apikey, &secret_hash).await {
                Ok(access) => access,
                Err(StoreError::Duplicate(_)) => continue,
                Err(error) => return Err(error.into()),
            };
            let sealed = sealer.seal_api_secret(&access.apikey, &apisecret).map_err(sealing_fault)?;
            if let Err(error) = self.store.set_access_secret_encrypted(access.id, &sealed).await {
                // Credentials whose secret nobody can ever see are useless: take them back.
                if let Err(cleanup) = self.store.delete_access(customer, access.id).await {
                    tracing::error!(error = %cleanup, access = access.id, "removing half-created credentials");
                }
                return Err(error.into());
            }
            return Ok(CreatedAccess { access, apisecret });
        }
        Err(EngineError::Internal("could not draw an unused API key".into()))
    }

    /// The clear secret of stored credentials; `None` for credentials created before secrets
    /// were kept sealed.
    pub fn api_secret(hasher: &SecretHasher, record: &AccessRecord) -> Result<Option<String>, EngineError> {
        let Some(sealed) = &record.secret_encrypted else {
            return Ok(None);
        };
        Ok(Some(hasher.sealer().open_api_secret(&record.access.apikey, sealed).map_err(sealing_fault)?))
    }

    /// Write a customer parameter to the store. The engine's `save_param` also evicts its cache.
    pub async fn save_param(&self, customer: CustomerId, key: &str, value: &Value) -> Result<(), EngineError> {
        Ok(self.store.save_param(customer, key, value).await?)
    }

    /// Remove a customer parameter; rows deleted.
    pub async fn delete_param(&self, customer: CustomerId, key: &str) -> Result<u64, EngineError> {
        Ok(self.store.delete_param(customer, key).await?)
    }

    /// Run password hashing on a blocking thread, at most [`PASSWORD_HASHING_CONCURRENCY`] at
    /// once; waiting longer than the hashing wait for a slot is an overload.
    async fn hashing<T, F>(&self, work: F) -> Result<T, EngineError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let permit = match tokio::time::timeout(self.hashing_wait, self.hashing.acquire()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(EngineError::Internal("password hashing is shut down".into())),
            Err(_) => {
                m::record_overload("password_hashing");
                return Err(EngineError::Overloaded);
            }
        };
        let result = tokio::task::spawn_blocking(work)
            .await
            .map_err(|error| EngineError::Internal(format!("password hashing task failed: {error}")));
        drop(permit);
        result
    }

    /// Whether `password` matches the stored hash; as slow for a missing hash as for a wrong one.
    pub(super) async fn password_matches(&self, stored: Option<String>, password: String) -> Result<bool, EngineError> {
        self.hashing(move || verify_password(&password, stored.as_deref())).await
    }

    async fn password_hash(&self, password: String) -> Result<String, EngineError> {
        self.hashing(move || hash_password(&password)).await?.map_err(|error| EngineError::Internal(error.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::crypto::ServerKey;
    use crate::store::SqliteStore;

    fn customers() -> (Customers, Arc<dyn Store>) {
        let dir = std::env::temp_dir().join(format!("cashgrid-customers-{}", Uuid::new_v4()));
        let store: Arc<dyn Store> = match SqliteStore::open(&dir) {
            Ok(store) => Arc::new(store),
            Err(error) => panic!("sqlite store: {error}"),
        };
        (Customers::new(Arc::clone(&store), Duration::from_secs(5)), store)
    }

    fn hasher() -> SecretHasher {
        let key = ServerKey::from_base64("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=");
        SecretHasher::new(key.unwrap_or_else(|error| panic!("server key: {error}")))
    }

    fn bank() -> NewCustomer {
        NewCustomer { email: "bank@example.com".into(), display_name: None, roles: USER_ROLES.into() }
    }

    #[test]
    fn a_chosen_password_needs_eight_characters_and_an_initial_one_asks_for_a_change() {
        assert_eq!(NewPassword::chosen("1234567".into()), Err(PortalRejection::BadNewPassword));
        let chosen = NewPassword::given_or_initial(Some("12345678".into())).unwrap_or_else(|error| panic!("{error:?}"));
        assert_eq!((chosen.status(), chosen.initial_password()), (STATUS_OK, None));
        let initial = NewPassword::given_or_initial(None).unwrap_or_else(|error| panic!("{error:?}"));
        assert_eq!(initial.status(), STATUS_MUST_CHANGE_PASSWORD);
        assert_eq!(initial.initial_password().map(str::len), Some(crate::crypto::password::INITIAL_PASSWORD_LENGTH));
        assert!(!format!("{initial:?}").contains(initial.text()), "Debug never shows the password");
    }

    #[tokio::test]
    async fn new_credentials_authenticate_with_their_secret_and_reveal_it_to_their_owner() {
        let (customers, store) = customers();
        let hasher = hasher();
        let customer = customers.create_customer(&bank()).await.unwrap_or_else(|error| panic!("{error}"));
        let created = customers.create_access(&hasher, customer.id, Scope::TokenApi).await;
        let created = created.unwrap_or_else(|error| panic!("{error}"));
        assert!(hasher.api_secret_matches(&created.apisecret, &created.access.secret_hash));
        let record = store.load_access(created.access.id).await.unwrap_or_else(|error| panic!("{error}"));
        let record = record.unwrap_or_else(|| panic!("credentials not stored"));
        let revealed = Customers::api_secret(&hasher, &record).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(revealed.as_deref(), Some(created.apisecret.as_str()));
    }

    #[tokio::test]
    async fn a_second_customer_or_user_with_the_same_email_is_refused_as_in_use() {
        let (customers, store) = customers();
        customers.create_customer(&bank()).await.unwrap_or_else(|error| panic!("{error}"));
        let again = customers.create_customer(&bank()).await;
        assert_eq!(again, Err(PortalError::Rejected(PortalRejection::EmailInUse)));
        let user = customers.create_user(&bank(), &NewPassword::initial()).await;
        assert_eq!(user.map(|_| ()), Err(PortalError::Rejected(PortalRejection::EmailInUse)));
        let found = store.find_credentials("bank@example.com").await.unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(found.and_then(|found| found.password_hash), None, "the first customer keeps having no login");
    }

    #[tokio::test]
    async fn a_set_password_is_stored_hashed_with_its_status() {
        let (customers, store) = customers();
        let customer = customers.create_customer(&bank()).await.unwrap_or_else(|error| panic!("{error}"));
        let password = NewPassword::chosen("a good password".into()).unwrap_or_else(|error| panic!("{error:?}"));
        customers.set_password(customer.id, &password).await.unwrap_or_else(|error| panic!("{error}"));
        let found = store.find_credentials("bank@example.com").await.unwrap_or_else(|error| panic!("{error}"));
        let found = found.unwrap_or_else(|| panic!("no credentials"));
        assert_eq!(found.customer.status, STATUS_OK);
        assert!(customers
            .password_matches(found.password_hash.clone(), "a good password".into())
            .await
            .unwrap_or(false));
        assert!(!customers.password_matches(found.password_hash, "another password".into()).await.unwrap_or(true));
    }
}
