//! The cashgrid engine: pure domain state machines (`domain`), the one actor shell that owns
//! entities of every kind (`entity_actor`) with the kinds on it (`token_actor`,
//! `device_actor`), their placement (`entity_actor::registry`), durable storage (`store`) with its
//! group-committing `writer`, and the `Engine` facade the frontends call.
//!
//! Nothing here knows HTTP: frontends translate requests into engine calls and engine errors
//! into their protocol's answers.

pub mod account_actor;
pub mod clock;
pub mod context;
pub mod crypto;
pub mod device_actor;
pub mod domain;
pub mod engine;
pub mod entity_actor;
pub mod expiry;
pub mod feed_hub;
pub mod handoff;
pub mod metrics;
pub mod mqtt;
pub mod outcome;
pub mod store;
pub mod stored_kind;
pub mod token_actor;
pub mod trigger_actor;
pub mod writer;

pub use engine::{Engine, EngineConfig, EngineError, Rejection};
