//! Idempotency keys of creating requests: a client that did not learn whether its create
//! succeeded (a timeout, a 504, a broken connection) retries with the same `Idempotency-Key`
//! and gets the original result, on any node, instead of a second entity.
//!
//! The key is scoped to the customer and stored in the same commit as what its request
//! created (`store::IdempotencyRecord`), so a key exists exactly when its entity does. The
//! same key with another request is refused; while the first request with a key is still
//! being decided on this node, a second one is refused too (retry after a moment). Two nodes
//! racing with one key cannot both commit: the key's primary key makes the loser's write a
//! conflict, and the loser answers the winner's result.

use std::sync::Arc;

use dashmap::DashMap;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{EngineError, Rejection};
use crate::clock::now_millis;
use crate::domain::CustomerId;
use crate::store::{IdempotencyKey, Store};

/// Longest accepted key: room for a uuid or a client's own reference, no more.
pub const IDEMPOTENCY_KEY_LENGTH_MAX: usize = 255;
/// How long a key is kept (at least): a day, as payment APIs promise.
pub const IDEMPOTENCY_KEY_RETENTION_MS: i64 = 24 * 60 * 60 * 1000;

/// Whether `key` is a usable idempotency key: 1 to 255 visible ASCII characters.
pub fn key_is_valid(key: &str) -> bool {
    (1..=IDEMPOTENCY_KEY_LENGTH_MAX).contains(&key.len()) && key.bytes().all(|byte| byte.is_ascii_graphic())
}

/// The requests with a key that this node is deciding right now.
#[derive(Default)]
pub(super) struct InFlight(DashMap<(CustomerId, String), ()>);

/// Marks a key as in flight until dropped.
pub(super) struct InFlightGuard<'a> {
    in_flight: &'a InFlight,
    entry: (CustomerId, String),
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.in_flight.0.remove(&self.entry);
    }
}

impl InFlight {
    fn enter(&self, key: &IdempotencyKey) -> Result<InFlightGuard<'_>, EngineError> {
        let entry = (key.customer_id, key.key.clone());
        match self.0.entry(entry.clone()) {
            dashmap::Entry::Occupied(_) => Err(Rejection::IdempotencyKeyInFlight.into()),
            dashmap::Entry::Vacant(vacant) => {
                vacant.insert(());
                Ok(InFlightGuard { in_flight: self, entry })
            }
        }
    }
}

/// The key of a request of `kind` with these validated fields, for `customer`.
fn key_for(
    customer: CustomerId,
    key: &str,
    kind: &str,
    request: &impl Serialize,
) -> Result<IdempotencyKey, EngineError> {
    let fields =
        serde_json::to_vec(request).map_err(|error| EngineError::Internal(format!("request fingerprint: {error}")))?;
    let mut digest = Sha256::new();
    digest.update(kind.as_bytes());
    digest.update([0]);
    digest.update(&fields);
    Ok(IdempotencyKey {
        customer_id: customer,
        key: key.to_owned(),
        fingerprint: data_encoding::HEXLOWER.encode(&digest.finalize()),
        created: now_millis(),
    })
}

/// How a create with an optional key goes on.
pub(super) enum Begin<'a, T> {
    /// No key: create as always.
    Unkeyed,
    /// The key's request was done before: its original result.
    Replay(T),
    /// Create, carrying the key; it stays in flight on this node until dropped.
    Fresh(Keyed<'a>),
}

/// A key being decided on this node.
pub(super) struct Keyed<'a> {
    pub key: IdempotencyKey,
    _in_flight: InFlightGuard<'a>,
}

/// The keys of creating requests, for the services that create (tokens, devices).
#[derive(Clone)]
pub(super) struct Idempotency {
    store: Arc<dyn Store>,
    in_flight: Arc<InFlight>,
}

impl Idempotency {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store, in_flight: Arc::default() }
    }

    /// Start a create of `kind` with `request`'s validated fields under an optional key:
    /// refused while the key is in flight here or when it came with another request.
    pub async fn begin<T: DeserializeOwned>(
        &self,
        customer: CustomerId,
        key: Option<&str>,
        kind: &str,
        request: &impl Serialize,
    ) -> Result<Begin<'_, T>, EngineError> {
        let Some(key) = key else {
            return Ok(Begin::Unkeyed);
        };
        let key = key_for(customer, key, kind, request)?;
        let in_flight = self.in_flight.enter(&key)?;
        Ok(match self.replay(&key).await? {
            Some(result) => Begin::Replay(result),
            None => Begin::Fresh(Keyed { key, _in_flight: in_flight }),
        })
    }

    /// The original result of a request with this key, if its commit happened; refused when the
    /// key came with another request.
    pub async fn replay<T: DeserializeOwned>(&self, key: &IdempotencyKey) -> Result<Option<T>, EngineError> {
        let Some(record) = self.store.find_idempotency(key.customer_id, &key.key).await? else {
            return Ok(None);
        };
        if record.key.fingerprint != key.fingerprint {
            return Err(Rejection::IdempotencyKeyReused.into());
        }
        serde_json::from_str(&record.result)
            .map(Some)
            .map_err(|error| EngineError::Internal(format!("stored idempotent result: {error}")))
    }

    /// Forget keys older than the retention; returns how many went.
    pub async fn forget_expired(&self) -> Result<u64, EngineError> {
        Ok(self.store.delete_idempotency_before(now_millis() - IDEMPOTENCY_KEY_RETENTION_MS).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_of_bounded_length() {
        assert!(key_is_valid("3f2c-retry-1"));
        assert!(key_is_valid(&"k".repeat(255)));
        assert!(!key_is_valid(""));
        assert!(!key_is_valid(&"k".repeat(256)));
        assert!(!key_is_valid("with space"));
        assert!(!key_is_valid("nul\u{0}"));
        assert!(!key_is_valid("ümlaut"));
    }

    #[test]
    fn the_fingerprint_tells_requests_apart_but_not_retries() {
        let first = key_for(1, "k", "token", &serde_json::json!({"amount": 1})).ok();
        assert!(first.is_some());
        let retry = key_for(1, "k", "token", &serde_json::json!({"amount": 1})).ok();
        let other = key_for(1, "k", "token", &serde_json::json!({"amount": 2})).ok();
        let device = key_for(1, "k", "device", &serde_json::json!({"amount": 1})).ok();
        let fingerprint = |key: &Option<IdempotencyKey>| key.as_ref().map(|key| key.fingerprint.clone());
        assert_eq!(fingerprint(&first), fingerprint(&retry));
        assert_ne!(fingerprint(&first), fingerprint(&other));
        assert_ne!(fingerprint(&first), fingerprint(&device));
    }
}
