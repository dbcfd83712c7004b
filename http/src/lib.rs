//! cashgrid's HTTP frontends. Handlers parse, authenticate and route to the engine; they never
//! touch the store. Each protocol maps engine answers to its own statuses and bodies.

pub mod body;
pub mod ccc;
pub mod client_origin;
pub mod dncash;
pub mod error;
pub mod feed_session;
pub mod ledger;
pub mod metrics;
pub mod openapi;
pub mod system;
pub mod time;

use actix_web::web;
use cashgrid_actors::Engine;

/// How business errors that the original answers with 500 are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorStatus {
    /// Exactly the original's statuses, so existing clients see no difference.
    #[default]
    Original,
    /// The same bodies with a 4xx status that says whose mistake it was.
    ClientErrors,
}

impl ErrorStatus {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "original" => Some(Self::Original),
            "4xx" => Some(Self::ClientErrors),
            _ => None,
        }
    }
}

/// Everything handlers need, shared by all workers.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub error_status: ErrorStatus,
    pub prometheus: metrics_exporter_prometheus::PrometheusHandle,
    /// How long a whole request body may take to arrive (`body::read_json`).
    pub body_timeout: std::time::Duration,
    /// Reverse proxies whose `X-Forwarded-*` headers are believed (`client_origin`).
    pub trusted_proxies: client_origin::TrustedProxies,
    /// The Crypto Capital API's open sockets, per client host and Bitcoin address.
    pub ccc_sockets: ccc::limits::Sockets,
}

/// Create the frontends' metric series at zero (once, at start), so dashboards show 0 rather
/// than nothing.
pub fn register_initial_series() {
    dncash::register_initial_series();
    ledger::register_initial_series();
    ccc::register_initial_series();
}

/// Register every route of every protocol.
pub fn configure(config: &mut web::ServiceConfig) {
    system::configure(config);
    openapi::configure(config);
    dncash::configure(config);
    ledger::configure(config);
    ccc::configure(config);
}

/// The original's JSON content type (Express adds the charset).
pub const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// A 200 with a JSON body, typed as the original types it.
pub fn json_ok<T: serde::Serialize>(body: T) -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok().content_type(JSON_CONTENT_TYPE).json(body)
}
