//! Who is calling, and their settings: API keys checked against their keyed hashes, listen
//! keys of the WebSockets, and customer parameters, each through a bounded short-lived cache
//! (the hot paths would otherwise pay a query each).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::customers::Customers;
use super::{bounded_cache, EngineError};
use crate::context::EntityContext;
use crate::domain::CustomerId;
use crate::store::{Customer, Scope};

/// How long an authenticated API key is trusted without asking the store again.
const ACCESS_CACHE_TTL: Duration = Duration::from_secs(30);
/// Bound on cached API keys.
const ACCESS_CACHE_MAX: u64 = 100_000;
/// How long a customer parameter read is reused. Changes made through this engine apply at
/// once; changes by another node or the CLI within this time.
const PARAM_CACHE_TTL: Duration = Duration::from_secs(2);
/// Bound on cached parameters.
const PARAM_CACHE_MAX: u64 = 100_000;

#[derive(Clone)]
struct CachedAccess {
    secret_hash: Vec<u8>,
    scope: Scope,
    customer: Customer,
}

#[derive(Clone)]
pub struct AccessService {
    context: Arc<EntityContext>,
    /// Logins, API credentials and parameters (shared with the CLI and the portal).
    customers: Arc<Customers>,
    access_cache: moka::sync::Cache<String, Arc<CachedAccess>>,
    param_cache: moka::sync::Cache<(CustomerId, String), Option<Value>>,
}

impl AccessService {
    pub(super) fn new(context: Arc<EntityContext>, customers: Arc<Customers>) -> Self {
        Self {
            context,
            customers,
            access_cache: bounded_cache(ACCESS_CACHE_TTL, ACCESS_CACHE_MAX),
            param_cache: bounded_cache(PARAM_CACHE_TTL, PARAM_CACHE_MAX),
        }
    }

    /// The customer behind an API key and secret of `scope`, or `None` for any mismatch.
    pub async fn authenticate(
        &self,
        apikey: &str,
        secret: &str,
        scope: Scope,
    ) -> Result<Option<Customer>, EngineError> {
        Ok(self.authenticate_any(apikey, secret, &[scope]).await?.map(|(customer, _)| customer))
    }

    /// The customer behind an API key and secret of one of `scopes`, with the key's scope.
    pub async fn authenticate_any(
        &self,
        apikey: &str,
        secret: &str,
        scopes: &[Scope],
    ) -> Result<Option<(Customer, Scope)>, EngineError> {
        let key = apikey.to_ascii_lowercase();
        let access = match self.access_cache.get(&key) {
            Some(access) => access,
            None => {
                let Some(found) = self.context.store.find_access(&key).await? else {
                    return Ok(None);
                };
                let Some(customer) = self.context.store.load_customer(found.customer_id).await? else {
                    return Ok(None);
                };
                let access = Arc::new(CachedAccess { secret_hash: found.secret_hash, scope: found.scope, customer });
                self.access_cache.insert(key, Arc::clone(&access));
                access
            }
        };
        let (secret_hash, found_scope, customer) = (&access.secret_hash, access.scope, access.customer.clone());
        let matches = scopes.contains(&found_scope) && self.context.hasher.api_secret_matches(secret, secret_hash);
        Ok(matches.then_some((customer, found_scope)))
    }

    /// The customer behind a listen key: an API key of `scope` given without its secret, as
    /// the original's WebSockets authenticate. `None` for an unknown key or another scope.
    pub async fn listen_key_customer(&self, apikey: &str, scope: Scope) -> Result<Option<Customer>, EngineError> {
        let Some(access) = self.context.store.find_access(&apikey.to_ascii_lowercase()).await? else {
            return Ok(None);
        };
        if access.scope != scope {
            return Ok(None);
        }
        Ok(self.context.store.load_customer(access.customer_id).await?)
    }

    /// A customer parameter, through the short-lived cache.
    pub async fn param(&self, customer: CustomerId, key: &str) -> Result<Option<Value>, EngineError> {
        let cache_key = (customer, key.to_owned());
        if let Some(value) = self.param_cache.get(&cache_key) {
            return Ok(value);
        }
        let value = self.context.store.load_param(customer, key).await?;
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

    /// Stop trusting cached API keys of the customer with this email (roles changed, deleted).
    pub(super) fn forget_customer(&self, email: &str) {
        let email = email.to_lowercase();
        for (key, entry) in self.access_cache.iter() {
            if entry.customer.email == email {
                self.access_cache.invalidate(key.as_ref());
            }
        }
    }

    /// Stop trusting a cached API key (its credentials were deleted).
    pub(super) fn forget_key(&self, apikey: &str) {
        self.access_cache.invalidate(&apikey.to_ascii_lowercase());
    }
}
