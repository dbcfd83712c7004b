//! Identifiers and units shared by the domain.

/// Milliseconds since the Unix epoch, UTC. All stored and compared times use this unit.
pub type Millis = i64;

/// A customer (bank, merchant) as numbered by the store.
pub type CustomerId = i64;
