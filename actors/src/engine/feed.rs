//! Live feeds: committed events delivered to subscribers, in order, resumable; active expiry
//! and history retention.

use super::Engine;

impl Engine {}
