//! The only place cashgrid reads the wall clock: the engine, the store and the frontends take
//! "now" from here, so there is one source of time to reason about (and to replace). The domain
//! never reads it: it is handed `now`. Durations and deadlines use `Instant`, not this clock.

use crate::domain::Millis;

/// Now, in epoch milliseconds UTC.
pub fn now_millis() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// Now, in whole epoch seconds UTC (JWT `iat`/`exp`, TOTP steps).
pub fn now_seconds() -> i64 {
    now_millis().div_euclid(1000)
}
