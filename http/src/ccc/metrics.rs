//! The Crypto Capital API's metrics (docs/METRICS.md): open connections, `auth` results, and
//! ops by name and result. Op names are a fixed set; anything else counts as `unknown`.

use std::time::Duration;

use metrics::{counter, gauge, histogram};

pub const CONNECTIONS: &str = "cashgrid_ccc_connections";
pub const AUTHS: &str = "cashgrid_ccc_auths_total";
pub const OPS: &str = "cashgrid_ccc_ops_total";
pub const OP_DURATION: &str = "cashgrid_ccc_op_duration_seconds";
pub const REFUSED_SOCKETS: &str = "cashgrid_ccc_refused_sockets_total";

/// The ops of the protocol (fact sheet §4), the label values of [`OPS`] besides `unknown` and
/// `invalid` (a frame that is not an op).
const OPS_KNOWN: [&str; 7] = ["auth", "register", "getinfo", "setinfo", "balance", "history", "transfer"];
const RESULTS: [&str; 3] = ["ok", "error", "rate_limited"];

/// Series that exist before the first connection.
pub fn register_initial_series() {
    cashgrid_actors::feed_hub::register_feed_series(cashgrid_actors::engine::ccc::FEED_LABEL);
    gauge!(CONNECTIONS).set(0.0);
    for result in ["ok", "refused"] {
        counter!(AUTHS, "result" => result).absolute(0);
    }
    for reason in ["per_ip", "per_address"] {
        counter!(REFUSED_SOCKETS, "reason" => reason).absolute(0);
    }
    for op in OPS_KNOWN.iter().chain(&["unknown", "invalid"]) {
        for result in RESULTS {
            counter!(OPS, "op" => *op, "result" => result).absolute(0);
        }
    }
}

/// The label for an op's name.
pub fn op_label(name: &str) -> &'static str {
    OPS_KNOWN.iter().find(|known| **known == name).copied().unwrap_or("unknown")
}

pub fn record_op(op: &'static str, result: &'static str, took: Duration) {
    counter!(OPS, "op" => op, "result" => result).increment(1);
    histogram!(OP_DURATION, "op" => op).record(took.as_secs_f64());
}

pub fn record_refused_socket(reason: &'static str) {
    counter!(REFUSED_SOCKETS, "reason" => reason).increment(1);
}

pub fn record_auth(result: &'static str) {
    counter!(AUTHS, "result" => result).increment(1);
}

/// Counts a connection as open while it lives.
pub struct Open(());

impl Open {
    pub fn connection() -> Self {
        gauge!(CONNECTIONS).increment(1.0);
        Self(())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        gauge!(CONNECTIONS).decrement(1.0);
    }
}
