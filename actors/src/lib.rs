//! The cashgrid engine: pure domain state machines (`domain`), the actors that own entities
//! (`token_actor`, `device_actor`), their placement (`registry`), durable storage (`store`)
//! with its group-committing `writer`, and the `Engine` facade the frontends call.
//!
//! Nothing here knows HTTP: frontends translate requests into engine calls and engine errors
//! into their protocol's answers.

pub mod clock;
pub mod context;
pub mod crypto;
pub mod device_actor;
pub mod domain;
pub mod engine;
pub mod expiry;
pub mod feed_hub;
pub mod handoff;
pub mod metrics;
pub mod mqtt;
pub mod outcome;
pub mod registry;
pub mod store;
pub mod token_actor;
pub mod trigger_actor;
pub mod writer;

pub use engine::{Engine, EngineConfig, EngineError, Rejection};
