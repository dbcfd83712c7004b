//! A toy entity kind: a counter that an owner opens, adds to and closes. This file is all the
//! domain code a new kind needs; with one migration per backend (`postgres.sql`, `sqlite.sql`
//! beside it, indexing its one lookup column) it runs on the generic actor shell and store
//! (`cashgrid_actors::stored_kind::Stored<Counter>`), as `toy.rs` shows.

use cashgrid_actors::domain::{Change, Entity, Millis};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counter {
    pub id: String,
    pub version: i64,
    pub owner: String,
    pub total: i64,
    pub closed: bool,
}

#[derive(Debug, Clone)]
pub struct Open {
    pub id: String,
    pub owner: String,
}

#[derive(Debug, Clone)]
pub enum CounterCommand {
    Add(i64),
    Close,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CounterEvent {
    Opened { owner: String, at: Millis },
    Added { amount: i64, total: i64, at: Millis },
    Closed { at: Millis },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterRejection {
    /// Only positive amounts are added.
    NotPositive,
    /// The total would not fit.
    TooLarge,
    Closed,
}

impl Entity for Counter {
    const KIND: &'static str = "toy_counter";
    type Id = String;
    type Create = Open;
    type Command = CounterCommand;
    type Event = CounterEvent;
    type Rejection = CounterRejection;
    type Transition = Change<Self>;

    fn id(&self) -> String {
        self.id.clone()
    }

    fn version(&self) -> i64 {
        self.version
    }

    fn is_final(&self) -> bool {
        self.closed
    }

    fn create(open: Open, now: Millis) -> Result<Change<Self>, CounterRejection> {
        let event = CounterEvent::Opened { owner: open.owner.clone(), at: now };
        let counter = Self { id: open.id, version: 1, owner: open.owner, total: 0, closed: false };
        Ok(Change { entity: counter, events: vec![event] })
    }

    fn apply(&self, command: &CounterCommand, now: Millis) -> Result<Change<Self>, CounterRejection> {
        if self.closed {
            return Err(CounterRejection::Closed);
        }
        let mut next = Self { version: self.version + 1, ..self.clone() };
        let event = match command {
            CounterCommand::Add(amount) if *amount <= 0 => return Err(CounterRejection::NotPositive),
            CounterCommand::Add(amount) => {
                next.total = self.total.checked_add(*amount).ok_or(CounterRejection::TooLarge)?;
                CounterEvent::Added { amount: *amount, total: next.total, at: now }
            }
            CounterCommand::Close => {
                next.closed = true;
                CounterEvent::Closed { at: now }
            }
        };
        Ok(Change { entity: next, events: vec![event] })
    }

    fn index_columns(&self) -> Vec<(&'static str, String)> {
        vec![("owner", self.owner.clone())]
    }
}
