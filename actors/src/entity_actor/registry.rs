//! Placement, lookup and addressing of one kind's entity actors.
//!
//! Each entity's actor lives on arbiter `hash(id) % arbiters`, so one core serves it and its
//! neighbours share nothing. The registry maps id → address; the first request for an id
//! starts its actor, which loads its own snapshot before it handles anything.

use std::future::Future;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Addr, ArbiterHandle, MailboxError, Supervisor};
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use super::{EntityActor, Envelope, Id, Kind, Start};
use crate::context::EntityContext;
use crate::domain::Entity;
use crate::handoff::Handoff;
use crate::metrics as m;
use crate::outcome::EngineError;

/// Time an actor gets beyond a request's deadline to answer it itself: its own answer says
/// whether the request took effect, where a timeout here could only say "unknown".
const ANSWER_GRACE: Duration = Duration::from_secs(1);

pub struct Registry<K: Kind> {
    context: Arc<EntityContext>,
    entries: DashMap<Id<K>, Addr<EntityActor<K>>>,
    arbiters: Vec<ArbiterHandle>,
    placement: std::collections::hash_map::RandomState,
    /// The arbiter the next [`Registry::run_beside`] work goes to.
    next_beside: AtomicUsize,
}

impl<K: Kind> Registry<K> {
    /// `arbiters` must not be empty.
    pub fn new(context: Arc<EntityContext>, arbiters: Vec<ArbiterHandle>) -> Self {
        Self {
            context,
            entries: DashMap::new(),
            arbiters,
            placement: Default::default(),
            next_beside: AtomicUsize::new(0),
        }
    }

    /// What this kind's actors are handed.
    pub fn context(&self) -> &Arc<EntityContext> {
        &self.context
    }

    /// Ask the entity's actor, activating it (as `start` says) if it has none. The actor
    /// answers by the request's deadline, `timeout` from now (its write has the same deadline);
    /// if it cannot be reached in time the request is abandoned — and then certainly never
    /// decided — unless the actor had already started on it: then the outcome is unknown. A
    /// request that finds the actor just passivated is sent once more to a fresh activation.
    pub async fn ask(
        self: &Arc<Self>,
        id: Id<K>,
        request: K::Request,
        start: Start,
        timeout: Duration,
    ) -> Result<K::Reply, EngineError> {
        let deadline = Instant::now() + timeout;
        let handoff = Arc::new(Handoff::default());
        let mut answer = Err(EngineError::Unavailable);
        for _ in 0..2 {
            let address = self.address(&id, start);
            let envelope = Envelope::<K> {
                request: request.clone(),
                sent_at: Instant::now(),
                deadline,
                handoff: Arc::clone(&handoff),
            };
            match address.send(envelope).timeout(timeout + ANSWER_GRACE).await {
                Ok(reply) => return reply,
                Err(MailboxError::Closed) => self.remove(&id, &address),
                Err(MailboxError::Timeout) => {
                    m::record_overload("mailbox");
                    answer = Err(EngineError::Overloaded);
                    break;
                }
            }
        }
        if !handoff.abandon() {
            tracing::error!(kind = K::Entity::KIND, %id, "an actor took a request but did not answer it in time");
            return Err(EngineError::OutcomeUnknown);
        }
        answer
    }

    /// Run `work` to its end as a task on one of this kind's arbiters (each in turn) and answer
    /// its output. Work that talks mostly to this kind's actors (a ledger batch asks an account
    /// actor per transfer) then reaches those living there without waking another thread for
    /// every message and answer. The task runs on even if the caller stops waiting.
    pub async fn run_beside<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, EngineError> {
        let turn = self.next_beside.fetch_add(1, Ordering::Relaxed) % self.arbiters.len().max(1);
        let Some(arbiter) = self.arbiters.get(turn) else {
            return Err(EngineError::Unavailable);
        };
        let (answer, answered) = tokio::sync::oneshot::channel();
        let spawned = arbiter.spawn(async move {
            // The caller may have stopped waiting; the work is done either way.
            let _ = answer.send(work.await);
        });
        if !spawned {
            return Err(EngineError::Unavailable);
        }
        answered.await.map_err(|_| EngineError::Internal("work beside the actors ended unanswered".into()))
    }

    /// The live actor for `id`, started on its arbiter if there is none.
    fn address(self: &Arc<Self>, id: &Id<K>, start: Start) -> Addr<EntityActor<K>> {
        if let Some(address) = self.entries.get(id) {
            if address.connected() {
                return address.clone();
            }
        }
        match self.entries.entry(id.clone()) {
            Entry::Occupied(mut entry) => {
                if entry.get().connected() {
                    entry.get().clone()
                } else {
                    let address = self.start(id, start);
                    entry.insert(address.clone());
                    address
                }
            }
            Entry::Vacant(entry) => {
                let address = self.start(id, start);
                entry.insert(address.clone());
                address
            }
        }
    }

    fn start(self: &Arc<Self>, id: &Id<K>, start: Start) -> Addr<EntityActor<K>> {
        let (registry, id) = (Arc::clone(self), id.clone());
        Supervisor::start_in_arbiter(self.arbiter_for(&id), move |_| EntityActor::new(id, registry, start))
    }

    fn arbiter_for(&self, id: &Id<K>) -> &ArbiterHandle {
        let hash = self.placement.hash_one(id);
        let index = usize::try_from(hash % self.arbiters.len().max(1) as u64).unwrap_or(0);
        &self.arbiters[index.min(self.arbiters.len().saturating_sub(1))]
    }

    /// Forget `id` whatever actor it maps to, without starting one: the next request starts a
    /// fresh actor, which loads the entity again. A forgotten actor gets no more requests and
    /// passivates when idle.
    pub fn forget(&self, id: &Id<K>) {
        self.entries.remove(id);
    }

    /// Forget `id` if it still maps to `address` (an actor passivating itself).
    pub(crate) fn remove(&self, id: &Id<K>, address: &Addr<EntityActor<K>>) {
        self.entries.remove_if(id, |_, current| current == address);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
