//! One supervised actor shell for every entity kind.
//!
//! An entity's actor owns its state and handles one request at a time, so the requests of one
//! entity are serialised without any database lock; entities share nothing. The shell does
//! what every kind needs: it loads the snapshot before the first request, refuses requests
//! whose sender has given up (`Handoff`), answers only once the kind's work is done and takes
//! no other message meanwhile (`AtomicResponse`), restarts and reloads after a fault (the
//! store, not memory, is the truth then), and leaves memory when idle. A [`Kind`] adds what is
//! particular: how to load its state and how to decide and commit a request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::future::BoxFuture;

use crate::context::EntityContext;
use crate::domain::Entity;
use crate::handoff::Handoff;
use crate::metrics as m;
use crate::outcome::EngineError;
use crate::store::StoreError;
use crate::writer::WriteError;

mod registry;

pub use registry::Registry;

/// An id with no entity behind it keeps its actor only briefly.
const MISSING_TTL: Duration = Duration::from_secs(1);

/// The id type of a kind's entities.
pub type Id<K> = <<K as Kind>::Entity as Entity>::Id;

/// What the actor keeps once a request is settled, and the answer.
pub type Settled<K> = (After<<K as Kind>::State>, Result<<K as Kind>::Reply, EngineError>);

/// What an entity kind adds to the shell.
pub trait Kind: Sized + Send + Sync + 'static {
    type Entity: Entity;
    /// What the actor keeps of a loaded entity: the entity, or more (a device's parsed key).
    type State: Send + Unpin + 'static;
    /// What a frontend asks of one entity; sent again (cloned) if the first actor had stopped.
    type Request: Clone + Send + 'static;
    /// The answer to a request that was decided (a refusal included, as the kind shapes it).
    type Reply: Send + 'static;

    /// Requests that may wait in one actor's mailbox before senders are held back.
    const MAILBOX_CAPACITY: usize;
    /// An actor untouched this long leaves memory; its snapshot is in the store.
    const IDLE_TIMEOUT: Duration;
    /// How often an actor looks whether it has been idle that long.
    const IDLE_CHECK_INTERVAL: Duration;
    /// How soon after its last request the actor of a final entity leaves memory.
    const FINAL_LINGER: Duration;

    /// Read the entity's state from the store; `None` when there is no such entity.
    fn load(context: Arc<EntityContext>, id: Id<Self>) -> BoxFuture<'static, Result<Option<Self::State>, StoreError>>;

    fn is_final(state: &Self::State) -> bool;

    /// Decide and commit `request` on the state the actor holds (`None`: none was found, or
    /// the actor was started for a creation), by `deadline`. Returns what the actor keeps and
    /// the answer; the answer is sent only after the commit.
    fn handle(
        context: Arc<EntityContext>,
        id: Id<Self>,
        known: Option<Self::State>,
        request: Self::Request,
        deadline: Instant,
    ) -> BoxFuture<'static, Settled<Self>>;
}

/// What the actor does with its state once a request is settled.
pub enum After<S> {
    Keep(S),
    /// There is no such entity (as far as the store said).
    Missing,
    /// Keep nothing and leave memory now; the next request loads from the store.
    Leave,
    /// The outcome of a write is unknown: restart and reload from the store.
    Reload,
}

/// What the actor keeps, and the answer, after a write set that the writer did not commit:
/// `unchanged` when nothing was written (the writer's queue stayed full), else a reload, since
/// the store may or may not hold the write.
pub fn after_failed_write<S>(error: WriteError, unchanged: After<S>) -> (After<S>, EngineError) {
    let after = match error {
        WriteError::Overloaded => unchanged,
        WriteError::Unavailable | WriteError::Failed | WriteError::OutcomeUnknown => After::Reload,
    };
    (after, write_error(error))
}

/// The answer to a write set that the writer did not commit (an overload is counted).
pub fn write_error(error: WriteError) -> EngineError {
    match error {
        WriteError::Overloaded => {
            m::record_overload("writer");
            EngineError::Overloaded
        }
        WriteError::Unavailable => EngineError::Unavailable,
        WriteError::Failed => EngineError::Internal("write failed".into()),
        WriteError::OutcomeUnknown => EngineError::OutcomeUnknown,
    }
}

/// How a new actor begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Load the snapshot before the first request.
    Load,
    /// Nothing to load: the actor is started to create its entity.
    Absent,
}

/// A request in the mailbox, with the moment it was sent and when its sender stops waiting.
pub struct Envelope<K: Kind> {
    pub request: K::Request,
    pub sent_at: Instant,
    pub deadline: Instant,
    /// Taken when the actor starts on the request; a sender that gave up has abandoned it.
    pub handoff: Arc<Handoff>,
}

impl<K: Kind> Message for Envelope<K> {
    type Result = Result<K::Reply, EngineError>;
}

enum Slot<S> {
    Loading,
    Ready(S),
    Missing,
    Unavailable,
    /// The state is with the request being handled (the actor takes no message meanwhile).
    Busy,
}

pub struct EntityActor<K: Kind> {
    id: Id<K>,
    /// Its own kind's registry: the context, and the entry to leave when passivating.
    registry: Arc<Registry<K>>,
    slot: Slot<K::State>,
    last_active: Instant,
}

impl<K: Kind> EntityActor<K> {
    pub(crate) fn new(id: Id<K>, registry: Arc<Registry<K>>, start: Start) -> Self {
        let slot = match start {
            Start::Load => Slot::Loading,
            Start::Absent => Slot::Missing,
        };
        Self { id, registry, slot, last_active: Instant::now() }
    }

    fn passivate(&mut self, ctx: &mut Context<Self>) {
        self.registry.remove(&self.id, &ctx.address());
        ctx.stop();
    }

    fn leave_if_still_missing(&mut self, ctx: &mut Context<Self>) {
        ctx.run_later(MISSING_TTL, |actor, ctx| {
            if matches!(actor.slot, Slot::Missing | Slot::Unavailable) {
                actor.passivate(ctx);
            }
        });
    }

    fn load(&mut self, ctx: &mut Context<Self>) {
        self.slot = Slot::Loading;
        let loading = K::load(Arc::clone(self.registry.context()), self.id.clone());
        ctx.wait(loading.into_actor(self).map(|loaded, actor, ctx| {
            actor.slot = match loaded {
                Ok(Some(state)) => Slot::Ready(state),
                Ok(None) => Slot::Missing,
                Err(error) => {
                    tracing::warn!(kind = K::Entity::KIND, id = %actor.id, %error, "snapshot could not be loaded");
                    Slot::Unavailable
                }
            };
            if !matches!(actor.slot, Slot::Ready(_)) {
                actor.leave_if_still_missing(ctx);
            }
        }));
    }
}

impl<K: Kind> Actor for EntityActor<K> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(K::MAILBOX_CAPACITY);
        m::actor_started(K::Entity::KIND);
        match self.slot {
            // A first activation or a restart (see `restarting`) loads.
            Slot::Loading => self.load(ctx),
            // Started for a creation: if none arrives, it goes like any missing entity.
            _ => self.leave_if_still_missing(ctx),
        }
        ctx.run_interval(K::IDLE_CHECK_INTERVAL, |actor, ctx| {
            if actor.last_active.elapsed() >= K::IDLE_TIMEOUT {
                actor.passivate(ctx);
            }
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        m::actor_stopped(K::Entity::KIND);
    }
}

impl<K: Kind> Supervised for EntityActor<K> {
    fn restarting(&mut self, _: &mut Self::Context) {
        // `started` runs again and reloads: the store, not memory, is the truth after a fault.
        m::actor_restarted(K::Entity::KIND);
        self.slot = Slot::Loading;
    }
}

impl<K: Kind> Handler<Envelope<K>> for EntityActor<K> {
    type Result = AtomicResponse<Self, Result<K::Reply, EngineError>>;

    fn handle(&mut self, envelope: Envelope<K>, _: &mut Self::Context) -> Self::Result {
        self.last_active = Instant::now();
        m::record_mailbox_wait(K::Entity::KIND, envelope.sent_at.elapsed());
        let immediate = |answer| AtomicResponse::new(Box::pin(fut::ready(answer)));
        if Instant::now() >= envelope.deadline || envelope.handoff.is_abandoned() {
            // The sender has given up; deciding now would change state behind its back.
            m::record_overload(K::Entity::KIND);
            return immediate(Err(EngineError::Overloaded));
        }
        if !envelope.handoff.take() {
            // Sent again after an actor that took it stopped: that one may have decided it.
            return immediate(Err(EngineError::OutcomeUnknown));
        }
        let known = match std::mem::replace(&mut self.slot, Slot::Busy) {
            Slot::Ready(state) => Some(state),
            // The entity may have been created since (by another node, or by this request).
            Slot::Missing => None,
            other => {
                self.slot = other;
                return immediate(Err(EngineError::Unavailable));
            }
        };
        let context = Arc::clone(self.registry.context());
        let work = K::handle(context, self.id.clone(), known, envelope.request, envelope.deadline);
        AtomicResponse::new(Box::pin(work.into_actor(self).map(|(after, answer), actor, ctx| {
            match after {
                After::Keep(state) => {
                    if K::is_final(&state) {
                        ctx.run_later(K::FINAL_LINGER, |actor, ctx| {
                            if actor.last_active.elapsed() >= K::FINAL_LINGER {
                                actor.passivate(ctx);
                            }
                        });
                    }
                    actor.slot = Slot::Ready(state);
                }
                After::Missing => {
                    actor.slot = Slot::Missing;
                    actor.leave_if_still_missing(ctx);
                }
                After::Leave => {
                    actor.slot = Slot::Missing;
                    actor.passivate(ctx);
                }
                After::Reload => ctx.stop(),
            }
            answer
        })))
    }
}
