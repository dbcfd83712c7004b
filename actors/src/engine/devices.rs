//! Devices: registration, and the devices the hot paths check, from their actors through a
//! bounded short-lived cache.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::idempotency::{Begin, Idempotency};
use super::{bounded_cache, EngineError, Rejection};
use crate::clock::now_millis;
use crate::device_actor::{DeviceEntry, DeviceKind, GetDevice};
use crate::domain::{CustomerId, Device, DeviceType};
use crate::entity_actor::Registry;
use crate::entity_actor::Start;
use crate::store::{StoreError, IDEMPOTENCY_KEY, LIST_LIMIT_MAX};

/// How long a device answered by its actor is reused without asking the actor again. Changes
/// through this engine apply at once (the entry is dropped); the actor itself keeps the row
/// until it passivates, so this adds no staleness for changes made elsewhere.
const DEVICE_CACHE_TTL: Duration = Duration::from_secs(30);
/// Bound on cached devices.
const DEVICE_CACHE_MAX: u64 = 100_000;

/// A device registration, validated by the frontend.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NewDevice {
    pub device_type: DeviceType,
    pub pubkey: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub refname: Option<String>,
    pub info: Option<String>,
}

#[derive(Clone)]
pub struct DeviceService {
    registry: Arc<Registry<DeviceKind>>,
    /// Devices as their actors answered, so the hot paths skip a round trip to another thread.
    cache: moka::sync::Cache<Uuid, Arc<DeviceEntry>>,
    idempotency: Idempotency,
    send_timeout: Duration,
}

impl DeviceService {
    pub(super) fn new(registry: Arc<Registry<DeviceKind>>, idempotency: Idempotency, send_timeout: Duration) -> Self {
        Self { registry, cache: bounded_cache(DEVICE_CACHE_TTL, DEVICE_CACHE_MAX), idempotency, send_timeout }
    }

    /// Register a device. With an idempotency key, a retry answers the device first registered
    /// under it (see `idempotency`).
    pub async fn register(
        &self,
        customer: CustomerId,
        new: NewDevice,
        idempotency: Option<&str>,
    ) -> Result<Device, EngineError> {
        let context = self.registry.context();
        if let Some(pem) = &new.pubkey {
            crate::crypto::parse_public_key(pem, context.key_policy).map_err(Rejection::BadPublicKey)?;
        }
        let keyed = match self.idempotency.begin(customer, idempotency, "device", &new).await? {
            Begin::Replay(device) => return Ok(device),
            Begin::Fresh(keyed) => Some(keyed),
            Begin::Unkeyed => None,
        };
        let key = keyed.as_ref().map(|keyed| &keyed.key);
        let device = Device {
            id: 0,
            uuid: Uuid::new_v4(),
            customer_id: customer,
            created: now_millis(),
            device_type: new.device_type,
            pubkey: new.pubkey,
            lat: new.lat,
            lon: new.lon,
            refname: new.refname,
            info: new.info,
        };
        match (context.store.insert_device(&device, key).await, key) {
            (Err(StoreError::Duplicate(what)), Some(key)) if what == IDEMPOTENCY_KEY => self
                .idempotency
                .replay(key)
                .await?
                .ok_or_else(|| EngineError::Internal("idempotency key taken but not found".into())),
            (result, _) => Ok(result?),
        }
    }

    /// A device of `customer`, from its actor; `UnknownDevice` for any other.
    pub async fn owned(&self, customer: CustomerId, uuid: Uuid) -> Result<Arc<DeviceEntry>, EngineError> {
        match self.get(uuid).await? {
            Some(entry) if entry.device.customer_id == customer => Ok(entry),
            Some(_) | None => Err(Rejection::UnknownDevice.into()),
        }
    }

    /// Any device, from its actor.
    pub async fn get(&self, uuid: Uuid) -> Result<Option<Arc<DeviceEntry>>, EngineError> {
        if let Some(entry) = self.cache.get(&uuid) {
            return Ok(Some(entry));
        }
        let found = self.registry.ask(uuid, GetDevice, Start::Load, self.send_timeout).await?;
        // Only devices that exist are cached: an unknown uuid may be registered any moment.
        if let Some(entry) = &found {
            self.cache.insert(uuid, Arc::clone(entry));
        }
        Ok(found)
    }

    pub async fn list(&self, customer: CustomerId) -> Result<Vec<Device>, EngineError> {
        Ok(self.registry.context().store.list_devices(customer, LIST_LIMIT_MAX).await?)
    }

    /// A device of `customer`.
    pub async fn find(&self, customer: CustomerId, uuid: Uuid) -> Result<Option<Device>, EngineError> {
        Ok(self.get(uuid).await?.filter(|entry| entry.device.customer_id == customer).map(|entry| entry.device.clone()))
    }

    /// Drop the in-memory copy of a changed or deleted device, so the next request reloads it.
    pub(super) fn forget(&self, uuid: Uuid) {
        self.cache.invalidate(&uuid);
        self.registry.forget(&uuid);
    }
}
