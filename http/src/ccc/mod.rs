//! The Crypto Capital end-user WebSocket API, v1 (`../shared/spec/ccc-websocket-api.md`): one
//! WebSocket at `/ccc/v1` carrying JSON ops and messages, authenticated by a Bitcoin key that
//! signs a per-connection challenge (`session.rs`; envelopes in `protocol.rs`), and the
//! operator's HTTP side under `/ccc/v1/operator` (`operator.rs`, shared views in `views.rs`).

pub mod limits;
mod metrics;
pub mod operator;
mod ops;
mod protocol;
mod session;
pub mod views;

use actix_web::{web, HttpRequest, HttpResponse};

use crate::AppState;

pub use metrics::register_initial_series;

/// The endpoint's path.
pub const PATH: &str = "/ccc/v1";

pub fn configure(config: &mut web::ServiceConfig) {
    config.route(PATH, web::get().to(connect)).configure(operator::configure);
}

/// The API at `/` (and `/ccc/v1`) of a listener of its own (`--ccc-bind`).
pub fn configure_root(config: &mut web::ServiceConfig) {
    config.route("/", web::get().to(connect)).route(PATH, web::get().to(connect));
}

/// Upgrade to a WebSocket (anything else is refused by the handshake: 400).
async fn connect(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let origin = crate::client_origin::of(&request, &state.trusted_proxies);
    let Some(held) = state.ccc_sockets.open(origin.address) else {
        return Ok(HttpResponse::TooManyRequests().body("Too many sockets from this address."));
    };
    let (response, session, messages) = actix_ws::handle(&request, body)?;
    actix_web::rt::spawn(session::run(state.engine.clone(), held, session, messages));
    Ok(response)
}
