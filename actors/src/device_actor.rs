//! One actor per device: it keeps the device row and its parsed public key in memory, so the
//! hot paths (issue a token, claim, confirm) check ownership and encrypt without a query.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use rsa::RsaPublicKey;
use uuid::Uuid;

use crate::context::EntityContext;
use crate::crypto::{parse_public_key, KeyError, KeyPolicy};
use crate::domain::Device;
use crate::metrics as m;
use crate::outcome::EngineError;
use crate::registry::Registry;

pub const MAILBOX_CAPACITY: usize = 1024;
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
const IDLE_CHECK_INTERVAL: Duration = Duration::from_secs(30);
const MISSING_TTL: Duration = Duration::from_secs(1);
const KIND: &str = "device";

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

pub struct GetDevice {
    pub sent_at: Instant,
}

impl Message for GetDevice {
    type Result = Result<Option<Arc<DeviceEntry>>, EngineError>;
}

enum Slot {
    Loading,
    Ready(Arc<DeviceEntry>),
    Missing,
    Unavailable,
}

pub struct DeviceActor {
    id: Uuid,
    shared: Arc<EntityContext>,
    /// Its own kind's registry, to leave it when passivating.
    registry: Arc<Registry<DeviceActor>>,
    slot: Slot,
    last_active: Instant,
}

impl DeviceActor {
    pub fn new(id: Uuid, shared: Arc<EntityContext>, registry: Arc<Registry<DeviceActor>>) -> Self {
        Self { id, shared, registry, slot: Slot::Loading, last_active: Instant::now() }
    }

    fn passivate(&mut self, ctx: &mut Context<Self>) {
        self.registry.remove(self.id, &ctx.address());
        ctx.stop();
    }
}

impl Actor for DeviceActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        m::actor_started(KIND);
        self.slot = Slot::Loading;
        let store = Arc::clone(&self.shared.store);
        let id = self.id;
        ctx.wait(async move { store.load_device(id).await }.into_actor(self).map(|loaded, actor, ctx| {
            actor.slot = match loaded {
                Ok(Some(device)) => Slot::Ready(Arc::new(DeviceEntry::new(device, actor.shared.key_policy))),
                Ok(None) => {
                    ctx.run_later(MISSING_TTL, |actor, ctx| actor.passivate(ctx));
                    Slot::Missing
                }
                Err(error) => {
                    tracing::warn!(device = %actor.id, %error, "device could not be loaded");
                    ctx.run_later(MISSING_TTL, |actor, ctx| actor.passivate(ctx));
                    Slot::Unavailable
                }
            };
        }));
        ctx.run_interval(IDLE_CHECK_INTERVAL, |actor, ctx| {
            if actor.last_active.elapsed() >= IDLE_TIMEOUT {
                actor.passivate(ctx);
            }
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        m::actor_stopped(KIND);
    }
}

impl Supervised for DeviceActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        m::actor_restarted(KIND);
        self.slot = Slot::Loading;
    }
}

impl Handler<GetDevice> for DeviceActor {
    type Result = Result<Option<Arc<DeviceEntry>>, EngineError>;

    fn handle(&mut self, message: GetDevice, _: &mut Self::Context) -> Self::Result {
        self.last_active = Instant::now();
        m::record_mailbox_wait(KIND, message.sent_at.elapsed());
        match &self.slot {
            Slot::Ready(entry) => Ok(Some(Arc::clone(entry))),
            Slot::Missing => Ok(None),
            Slot::Loading | Slot::Unavailable => Err(EngineError::Unavailable),
        }
    }
}
