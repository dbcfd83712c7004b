//! The ledger's live feed (`GET /ledger/v1/feed`, a WebSocket): every journal line of the
//! caller's accounts (an operator's: of every account) as it commits, in sequence order, each
//! with the account's sums after it. `since=N` first replays the lines after sequence number N,
//! then continues live without a gap or a duplicate. Text heartbeats `{"heartbeat":TS,"seq":N}`
//! name the last sequence number delivered; a client that does not keep up is closed with
//! code 4001 and the `since=` to resume from. The machinery is the token feeds'
//! (`crate::feed_session`, `feed_hub`).

use actix_web::{web, HttpRequest, HttpResponse};
use cashgrid_actors::feed_hub::{self, Audience, FeedSpec, LedgerEntries};
use cashgrid_actors::store::LedgerEntry;
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use super::error::{ErrorBody, ReadFaults};
use super::views::LineView;
use super::{caller, query, resource, LedgerError};
use crate::feed_session::{is_upgrade, parse_since, upgrade, Frames, Start};
use crate::AppState;

/// The feed's metric label.
const LABEL: &str = "ledger";

#[derive(OpenApi)]
#[openapi(paths(feed), components(schemas(EntryFrame)))]
pub(super) struct Document;

pub(super) fn configure(config: &mut web::ServiceConfig) {
    config.service(resource("/feed").route(web::get().to(feed)));
}

/// Create the feed's metric series at zero.
pub fn register_initial_series() {
    feed_hub::register_feed_series(LABEL);
}

/// One journal line on the feed.
#[derive(Serialize, ToSchema)]
struct EntryFrame {
    #[schema(format = Uuid)]
    account_id: String,
    #[serde(flatten)]
    line: LineView,
}

fn render(entry: &LedgerEntry) -> String {
    let frame = EntryFrame { account_id: entry.account.to_string(), line: LineView::of(entry) };
    // A struct of plain fields always serialises.
    serde_json::to_string(&frame).unwrap_or_default()
}

/// Subscribe to the journal lines of the caller's accounts over a WebSocket.
#[utoipa::path(
    get,
    path = "/ledger/v1/feed",
    tag = "Statements",
    params(("since" = Option<i64>, Query, minimum = 0, description = "Replay the lines after this sequence number first.")),
    security(("ledger_api_key" = [], "ledger_api_secret" = [])),
    responses(
        (status = 101, description = "Switching to the WebSocket: text frames of `EntryFrame`s and heartbeats `{\"heartbeat\":TS,\"seq\":N}`."),
        (status = 400, description = "Not a WebSocket request, or `since` is not a sequence number.", body = ErrorBody),
        ReadFaults,
    )
)]
async fn feed(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let caller = caller(&state, &request).await?;
    let since = parse_since(query(&request)?.get("since").map(String::as_str))
        .map_err(|_| LedgerError::invalid("since must be a sequence number (an integer >= 0)."))?;
    if !is_upgrade(&request) {
        return Err(LedgerError::invalid("This is a WebSocket: ask for an upgrade.").into());
    }
    let audience = if caller.operator { Audience::All } else { Audience::Customer(caller.customer) };
    let spec = FeedSpec::<LedgerEntries>::new(LABEL, |_, _| true);
    let subscription = state.engine.feeds().subscribe_ledger(spec, audience, since).map_err(LedgerError::fault)?;
    let frames = Frames { render: Box::new(render), heartbeats: true };
    upgrade(&request, body, Start::Subscribed(subscription, frames))
}
