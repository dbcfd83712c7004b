//! Placement and lookup of entity actors.
//!
//! Each entity's actor lives on arbiter `hash(id) % arbiters`, so one core serves it and its
//! neighbours share nothing. The registry maps id → address; the first message for an id
//! starts its actor, which loads its own snapshot before it handles anything.

use std::hash::{BuildHasher, Hash};

use actix::{Actor, Addr, ArbiterHandle, Context, Supervised, Supervisor};
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use uuid::Uuid;

pub struct Registry<A>
where
    A: Actor<Context = Context<A>>,
{
    entries: DashMap<Uuid, Addr<A>>,
    arbiters: Vec<ArbiterHandle>,
    placement: std::collections::hash_map::RandomState,
}

impl<A> Registry<A>
where
    A: Actor<Context = Context<A>> + Supervised,
{
    /// `arbiters` must not be empty.
    pub fn new(arbiters: Vec<ArbiterHandle>) -> Self {
        Self { entries: DashMap::new(), arbiters, placement: Default::default() }
    }

    /// The live actor for `id`, started with `make` on its arbiter if there is none.
    pub fn address<F>(&self, id: Uuid, make: F) -> Addr<A>
    where
        F: FnOnce() -> A + Send + 'static,
    {
        if let Some(address) = self.entries.get(&id) {
            if address.connected() {
                return address.clone();
            }
        }
        match self.entries.entry(id) {
            Entry::Occupied(mut entry) => {
                if entry.get().connected() {
                    entry.get().clone()
                } else {
                    let address = self.start(id, make);
                    entry.insert(address.clone());
                    address
                }
            }
            Entry::Vacant(entry) => {
                let address = self.start(id, make);
                entry.insert(address.clone());
                address
            }
        }
    }

    fn start<F>(&self, id: Uuid, make: F) -> Addr<A>
    where
        F: FnOnce() -> A + Send + 'static,
    {
        let arbiter = self.arbiter_for(id);
        Supervisor::start_in_arbiter(arbiter, move |_| make())
    }

    fn arbiter_for(&self, id: Uuid) -> &ArbiterHandle {
        let mut hasher = self.placement.build_hasher();
        id.hash(&mut hasher);
        let hash = std::hash::Hasher::finish(&hasher);
        let index = usize::try_from(hash % self.arbiters.len().max(1) as u64).unwrap_or(0);
        &self.arbiters[index.min(self.arbiters.len().saturating_sub(1))]
    }

    /// Forget `id` whatever actor it maps to, without starting one: the next message starts a
    /// fresh actor, which loads the entity again. A forgotten actor gets no more messages and
    /// passivates when idle.
    pub fn forget(&self, id: Uuid) {
        self.entries.remove(&id);
    }

    /// Forget `id` if it still maps to `address` (an actor passivating itself).
    pub fn remove(&self, id: Uuid, address: &Addr<A>) {
        self.entries.remove_if(&id, |_, current| current == address);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
