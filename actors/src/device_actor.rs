//! The device kind on the entity actor shell (`crate::entity_actor`): one actor per device
//! keeps the device row and its parsed public key in memory, so the hot paths (issue a token,
//! claim, confirm) check ownership and encrypt without a query.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use rsa::RsaPublicKey;
use uuid::Uuid;

use crate::context::EntityContext;
use crate::crypto::{parse_public_key, KeyError, KeyPolicy};
use crate::domain::Device;
use crate::entity_actor::{After, Kind, Settled};
use crate::store::StoreError;
/// A device as the engine uses it: the row plus its key, parsed once.
#[derive(Debug)]
pub struct DeviceEntry {
    pub device: Device,
    pub key: Result<RsaPublicKey, KeyError>,
}

impl DeviceEntry {
    /// The device with its key checked against `policy`: a key registered before a stricter
    /// policy is refused when it is used.
    pub fn new(device: Device, policy: KeyPolicy) -> Self {
        let key = match &device.pubkey {
            Some(pem) => parse_public_key(pem, policy),
            None => Err(KeyError::NotPem),
        };
        Self { device, key }
    }
}

/// A device's one request: the device as its actor holds it, or `None` when there is none.
#[derive(Debug, Clone, Copy)]
pub struct GetDevice;

pub struct DeviceKind;

impl Kind for DeviceKind {
    type Entity = Device;
    type State = Arc<DeviceEntry>;
    type Request = GetDevice;
    type Reply = Option<Arc<DeviceEntry>>;

    const MAILBOX_CAPACITY: usize = 1024;
    const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
    const IDLE_CHECK_INTERVAL: Duration = Duration::from_secs(30);
    /// Never used: a device is never final.
    const FINAL_LINGER: Duration = Duration::from_secs(300);

    fn load(context: Arc<EntityContext>, id: Uuid) -> BoxFuture<'static, Result<Option<Self::State>, StoreError>> {
        async move {
            let device = context.store.load_device(id).await?;
            Ok(device.map(|device| Arc::new(DeviceEntry::new(device, context.key_policy))))
        }
        .boxed()
    }

    fn is_final(_: &Self::State) -> bool {
        false
    }

    fn handle(
        _: Arc<EntityContext>,
        _: Uuid,
        known: Option<Self::State>,
        _: GetDevice,
        _: Instant,
    ) -> BoxFuture<'static, Settled<Self>> {
        let settled = match known {
            Some(entry) => (After::Keep(Arc::clone(&entry)), Ok(Some(entry))),
            // A missing device is not looked for again until the actor leaves (a second).
            None => (After::Missing, Ok(None)),
        };
        futures_util::future::ready(settled).boxed()
    }
}
