//! The only place the engine reads the wall clock.

use crate::domain::Millis;

pub fn now_millis() -> Millis {
    chrono::Utc::now().timestamp_millis()
}
