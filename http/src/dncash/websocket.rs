//! dncash-io WebSockets (§12): the original's change feeds, and a resumable feed of every
//! state change with its snapshot.
//!
//! | path | listen key | frames |
//! |---|---|---|
//! | `/dnapi/tokenws/v1/tokenchange/<key>` | Token API key | `{"uuid":"…"}` (the original's) |
//! | `/dnapi/clearingws/v1/change/<key>` | Clearing API key | `{"uuid":"…"}` (the original's) |
//! | `/dnapi/adminws/v1/tokenchange/<id>?token=<JWT>` | portal JWT (see below) | `change` (the original's) |
//! | `/dnapi/tokenws/v1/events/<key>?since=<seq>` | Token API key | `{"seq":N,"uuid":…,"event":…,"from":…,"to":…,"at":TS,"token":{…}}` |
//!
//! Which feed carries which event to whom is `feeds.rs` (the original's recipient table).
//! Each session is a task that relays its engine [`Subscription`] to the socket. It pings the
//! client every [`HEARTBEAT_INTERVAL`] (and, on the event feed, sends a text heartbeat with the
//! last delivered `seq`), closes when nothing came back for [`CLIENT_TIMEOUT`], and closes a
//! client that does not keep up with [`CLOSE_SLOW_CONSUMER`] and the `since=` to resume from.
//! The subscription is dropped, i.e. unsubscribed, whichever way the session ends.
//!
//! As in the original, an upgrade on an unknown path under these prefixes, or with an unknown
//! key, is accepted and closed at once with no close code (clients see 1005).
//!
//! Deliberate change: the original's admin feed had no authentication at all — anyone could
//! watch any customer's token activity by its id, or everyone's with `admin`. cashgrid keeps
//! the path and the frames but needs a portal JWT (`?token=<jwt>`, or an `Authorization:
//! Bearer` header for clients that can set one): `<id>` must be the session's own customer id,
//! and only admins may name another customer or `admin`. Anything else is closed at once.

use std::pin::pin;
use std::time::Duration;

use actix_web::rt::time::{interval_at, timeout, Instant};
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason, Message, MessageStream, Session};
use cashgrid_actors::domain::disclosure::{snapshot_for, Viewer};
use cashgrid_actors::feed_hub::{self, Audience, FeedItem, Subscription};
use cashgrid_actors::store::{EventRecord, Scope};
use cashgrid_actors::EngineError;
use futures_util::future::{select, Either};
use futures_util::StreamExt as _;
use serde::Serialize;
use serde_json::Value;

use super::feeds::{audience_of, Feed};
use super::route_not_found;
use super::token_api::query_map;
use crate::time::iso_millis;
use crate::AppState;

/// How often the server pings (and, on the event feed, sends a text heartbeat).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// A client from which nothing (not even a pong) arrived for this long is disconnected.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest one frame may wait for room in the socket's outbound buffer.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest the closing handshake may wait for room in the outbound buffer.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Largest frame a client may send; clients have nothing to say beyond pongs.
const CLIENT_FRAME_MAX_BYTES: usize = 4 * 1024;
/// Close code for a subscriber that fell too far behind; the reason names `since=<seq>`.
pub const CLOSE_SLOW_CONSUMER: u16 = 4001;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(
            web::scope("/dnapi/tokenws/v1")
                .wrap(actix_web::middleware::from_fn(super::text::refuse_nul))
                .route("/tokenchange/{key}", web::get().to(token_changes))
                .route("/events/{key}", web::get().to(events))
                .default_service(web::to(unknown)),
        )
        .service(
            web::scope("/dnapi/clearingws/v1")
                .wrap(actix_web::middleware::from_fn(super::text::refuse_nul))
                .route("/change/{key}", web::get().to(clearing_changes))
                .default_service(web::to(unknown)),
        )
        .service(
            web::scope("/dnapi/adminws/v1")
                .wrap(actix_web::middleware::from_fn(super::text::refuse_nul))
                .route("/tokenchange/{id}", web::get().to(admin_token_changes))
                .default_service(web::to(unknown)),
        );
}

/// How a session renders what it relays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    /// `{"uuid":"<token uuid>"}`
    Uuid,
    /// The literal text `change`.
    Change,
    /// The full event, plus text heartbeats.
    Event,
}

/// What the handshake decided.
enum Start {
    Subscribed(Subscription, Style),
    /// Unknown key or path: closed at once without a code, as the original does.
    Refused,
    /// Closed at once with this code and reason.
    Closed(CloseReason),
}

async fn token_changes(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Payload,
    key: web::Path<String>,
) -> Result<HttpResponse, actix_web::Error> {
    if !is_upgrade(&request) {
        return Err(route_not_found(&state, &request).into());
    }
    let start = listen(&state, &key, Scope::TokenApi, Feed::TokenChange, None, Style::Uuid).await;
    upgrade(&request, body, start)
}

async fn clearing_changes(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Payload,
    key: web::Path<String>,
) -> Result<HttpResponse, actix_web::Error> {
    if !is_upgrade(&request) {
        return Err(route_not_found(&state, &request).into());
    }
    let start = listen(&state, &key, Scope::ClearingApi, Feed::Clearing, None, Style::Uuid).await;
    upgrade(&request, body, start)
}

async fn events(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Payload,
    key: web::Path<String>,
) -> Result<HttpResponse, actix_web::Error> {
    if !is_upgrade(&request) {
        return Err(route_not_found(&state, &request).into());
    }
    let start = match parse_since(query_map(&request).get("since").map(String::as_str)) {
        Ok(since) => listen(&state, &key, Scope::TokenApi, Feed::Events, since, Style::Event).await,
        Err(()) => Start::Closed(reason(CloseCode::Policy, "since must be a sequence number (an integer >= 0)".into())),
    };
    upgrade(&request, body, start)
}

/// The original's unauthenticated admin feed, now behind a portal session (module docs).
async fn admin_token_changes(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Payload,
    id: web::Path<String>,
) -> Result<HttpResponse, actix_web::Error> {
    if !is_upgrade(&request) {
        return Err(route_not_found(&state, &request).into());
    }
    let start = match admin_audience(&state, &request, &id).await {
        Some(audience) => match state.engine.feeds().subscribe(Feed::AdminTokenChange.spec(), audience, None) {
            Ok(subscription) => Start::Subscribed(subscription, Style::Change),
            Err(error) => unavailable(&error),
        },
        None => Start::Refused,
    };
    upgrade(&request, body, start)
}

/// Whose changes a portal session may watch under `id`: its own customer's, or as an admin
/// any customer's or (`admin`) everyone's. `None` without a valid session or for anyone else.
async fn admin_audience(state: &AppState, request: &HttpRequest, id: &str) -> Option<Audience> {
    let bearer = request
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned());
    let token = bearer.or_else(|| query_map(request).remove("token"))?;
    let session = state.engine.portal().verify_session(&token).await.ok()?;
    match id {
        ADMIN_FEED_ID if session.is_admin() => Some(Audience::All),
        _ => match id.parse::<i64>() {
            Ok(customer) if customer == session.id || session.is_admin() => Some(Audience::Customer(customer)),
            Ok(_) | Err(_) => None,
        },
    }
}

/// The `<id>` of the admin feed that stands for every customer.
const ADMIN_FEED_ID: &str = "admin";

/// Any other path under the WebSocket prefixes: the original accepts the upgrade and closes.
async fn unknown(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    if !is_upgrade(&request) {
        return Err(route_not_found(&state, &request).into());
    }
    upgrade(&request, body, Start::Refused)
}

fn is_upgrade(request: &HttpRequest) -> bool {
    request
        .headers()
        .get(actix_web::http::header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("websocket"))
}

/// `since` absent: live only. Present: a sequence number, replayed from.
fn parse_since(value: Option<&str>) -> Result<Option<i64>, ()> {
    match value {
        None => Ok(None),
        Some(text) => match text.parse::<i64>() {
            Ok(since) if since >= 0 => Ok(Some(since)),
            Ok(_) | Err(_) => Err(()),
        },
    }
}

/// Subscribe the customer behind a listen key of `scope` to `feed`.
async fn listen(state: &AppState, key: &str, scope: Scope, feed: Feed, since: Option<i64>, style: Style) -> Start {
    let customer = match state.engine.access().listen_key_customer(key, scope).await {
        Ok(Some(customer)) => customer,
        Ok(None) => return Start::Refused,
        Err(error) => return unavailable(&error),
    };
    // The clearing feed is per party, as the original's `clearing:<customer id>` scope.
    let audience = match feed {
        Feed::Clearing => Audience::Customer(customer.id),
        Feed::TokenChange | Feed::AdminTokenChange | Feed::Events => audience_of(&customer),
    };
    match state.engine.feeds().subscribe(feed.spec(), audience, since) {
        Ok(subscription) => Start::Subscribed(subscription, style),
        Err(error) => unavailable(&error),
    }
}

fn unavailable(error: &EngineError) -> Start {
    tracing::warn!(%error, "live feed subscription refused");
    Start::Closed(reason(CloseCode::Again, "feed unavailable; try again later".into()))
}

fn reason(code: CloseCode, description: String) -> CloseReason {
    CloseReason { code, description: Some(description) }
}

fn slow_consumer(delivered: i64) -> CloseReason {
    reason(CloseCode::Other(CLOSE_SLOW_CONSUMER), format!("slow consumer; resume with since={delivered}"))
}

/// Accept the upgrade and start what the handshake decided.
fn upgrade(request: &HttpRequest, body: web::Payload, start: Start) -> Result<HttpResponse, actix_web::Error> {
    let (response, session, messages) = actix_ws::handle(request, body)?;
    match start {
        Start::Subscribed(subscription, style) => {
            actix_web::rt::spawn(run_session(subscription, session, messages, style));
        }
        Start::Refused => {
            actix_web::rt::spawn(async move {
                let _ = timeout(CLOSE_TIMEOUT, session.close(None)).await;
                drop(messages);
            });
        }
        Start::Closed(close) => {
            actix_web::rt::spawn(async move {
                let _ = timeout(CLOSE_TIMEOUT, session.close(Some(close))).await;
                drop(messages);
            });
        }
    }
    Ok(response)
}

enum Input {
    Feed(Result<FeedItem, cashgrid_actors::store::StoreError>),
    Client(Option<Result<Message, actix_ws::ProtocolError>>),
    Tick,
}

enum SendFailure {
    /// The connection is gone.
    Closed,
    /// The client does not read.
    Timeout,
}

async fn send_text(session: &mut Session, text: String) -> Result<(), SendFailure> {
    match timeout(SEND_TIMEOUT, session.text(text)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(SendFailure::Closed),
        Err(_) => Err(SendFailure::Timeout),
    }
}

/// Relay a subscription to one client until either side ends it.
async fn run_session(mut subscription: Subscription, mut session: Session, messages: MessageStream, style: Style) {
    let feed = subscription.label();
    let viewer = subscription.audience().viewer();
    let mut messages = messages.max_frame_size(CLIENT_FRAME_MAX_BYTES);
    let mut heartbeat = interval_at(Instant::now() + HEARTBEAT_INTERVAL, HEARTBEAT_INTERVAL);
    let mut last_heard = Instant::now();
    let mut delivered = subscription.last_seq();
    let close = loop {
        // Client frames are looked at before heartbeats, so a pong queued behind a burst of
        // events counts before the timeout is checked.
        let input = {
            let next = pin!(subscription.next());
            let client = pin!(messages.next());
            let tick = pin!(heartbeat.tick());
            match select(next, select(client, tick)).await {
                Either::Left((item, _)) => Input::Feed(item),
                Either::Right((Either::Left((message, _)), _)) => Input::Client(message),
                Either::Right((Either::Right((_, _)), _)) => Input::Tick,
            }
        };
        match input {
            Input::Feed(Ok(FeedItem::Event(event))) => {
                match send_text(&mut session, frame(style, &event, viewer)).await {
                    Ok(()) => delivered = event.seq,
                    Err(SendFailure::Closed) => break None,
                    Err(SendFailure::Timeout) => {
                        feed_hub::record_slow_consumer(feed);
                        break Some(slow_consumer(delivered));
                    }
                }
            }
            Input::Feed(Ok(FeedItem::Lagged)) => break Some(slow_consumer(delivered)),
            Input::Feed(Ok(FeedItem::Closed)) => break Some(reason(CloseCode::Restart, "server stopping".into())),
            Input::Feed(Err(error)) => {
                tracing::warn!(%error, feed, "live feed replay failed");
                break Some(reason(CloseCode::Error, format!("feed unavailable; resume with since={delivered}")));
            }
            Input::Client(Some(Ok(message))) => {
                last_heard = Instant::now();
                match message {
                    Message::Ping(bytes) => {
                        if !matches!(timeout(SEND_TIMEOUT, session.pong(&bytes)).await, Ok(Ok(()))) {
                            break None;
                        }
                    }
                    Message::Close(_) => break Some(reason(CloseCode::Normal, "bye".into())),
                    // The original ignores what clients send.
                    Message::Text(_)
                    | Message::Binary(_)
                    | Message::Continuation(_)
                    | Message::Pong(_)
                    | Message::Nop => {}
                }
            }
            Input::Client(Some(Err(error))) => {
                tracing::debug!(%error, "websocket protocol error");
                break Some(reason(CloseCode::Protocol, "protocol error".into()));
            }
            Input::Client(None) => break None,
            Input::Tick => {
                if last_heard.elapsed() > CLIENT_TIMEOUT {
                    break Some(reason(CloseCode::Away, "heartbeat timeout".into()));
                }
                if !matches!(timeout(SEND_TIMEOUT, session.ping(b"")).await, Ok(Ok(()))) {
                    break None;
                }
                if style == Style::Event {
                    match send_text(&mut session, heartbeat_frame(delivered)).await {
                        Ok(()) => {}
                        Err(SendFailure::Closed) => break None,
                        Err(SendFailure::Timeout) => {
                            feed_hub::record_slow_consumer(feed);
                            break Some(slow_consumer(delivered));
                        }
                    }
                }
            }
        }
    };
    // Unsubscribe first: the closing handshake may wait on a client that does not read.
    drop(subscription);
    if let Some(close) = close {
        let _ = timeout(CLOSE_TIMEOUT, session.close(Some(close))).await;
    }
}

fn frame(style: Style, event: &EventRecord, viewer: Viewer) -> String {
    match style {
        Style::Uuid => serde_json::json!({ "uuid": event.token.to_string() }).to_string(),
        Style::Change => "change".to_owned(),
        Style::Event => event_frame(event, viewer),
    }
}

/// One state change, keys in this order.
#[derive(Serialize)]
struct EventFrame {
    seq: i64,
    uuid: String,
    event: &'static str,
    from: Option<&'static str>,
    to: &'static str,
    at: Option<String>,
    token: Value,
}

/// Snapshot fields holding epoch milliseconds, rendered as the wire's `TS`.
const SNAPSHOT_TIMES: [&str; 3] = ["created", "updated", "expires"];

/// One event as `viewer` may see it: the other party's devices are left out of the snapshot.
fn event_frame(event: &EventRecord, viewer: Viewer) -> String {
    let mut token = snapshot_for(viewer, &event.snapshot);
    if let Value::Object(fields) = &mut token {
        for name in SNAPSHOT_TIMES {
            if let Some(field) = fields.get_mut(name) {
                if let Some(text) = field.as_i64().and_then(iso_millis) {
                    *field = Value::String(text);
                }
            }
        }
    }
    let frame = EventFrame {
        seq: event.seq,
        uuid: event.token.to_string(),
        event: event.kind.as_str(),
        from: event.from.map(|state| state.as_str()),
        to: event.to.as_str(),
        at: iso_millis(event.at),
        token,
    };
    // A struct of plain fields always serialises.
    serde_json::to_string(&frame).unwrap_or_default()
}

#[derive(Serialize)]
struct HeartbeatFrame {
    heartbeat: Option<String>,
    seq: i64,
}

fn heartbeat_frame(delivered: i64) -> String {
    let frame = HeartbeatFrame { heartbeat: iso_millis(cashgrid_actors::clock::now_millis()), seq: delivered };
    serde_json::to_string(&frame).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_a_non_negative_sequence_number_or_absent() {
        assert_eq!(parse_since(None), Ok(None));
        assert_eq!(parse_since(Some("0")), Ok(Some(0)));
        assert_eq!(parse_since(Some("42")), Ok(Some(42)));
        assert_eq!(parse_since(Some("-1")), Err(()));
        assert_eq!(parse_since(Some("x")), Err(()));
        assert_eq!(parse_since(Some("")), Err(()));
    }

    #[test]
    fn event_frames_carry_seq_kind_states_time_and_snapshot_in_order() {
        let event = EventRecord {
            seq: 7,
            token: uuid::Uuid::nil(),
            kind: cashgrid_actors::domain::TokenEventKind::Locked,
            from: Some(cashgrid_actors::domain::TokenState::Open),
            to: cashgrid_actors::domain::TokenState::Locked,
            at: 1_583_857_417_123,
            owner_id: 1,
            cash_customer_id: Some(2),
            version: 2,
            snapshot: serde_json::json!({"amount": 100, "created": 1_583_857_417_000_i64, "updated": null}),
        };
        assert_eq!(
            event_frame(&event, Viewer::Admin),
            concat!(
                r#"{"seq":7,"uuid":"00000000-0000-0000-0000-000000000000","event":"locked","from":"OPEN","#,
                r#""to":"LOCKED","at":"2020-03-10T16:23:37.123Z","#,
                r#""token":{"amount":100,"created":"2020-03-10T16:23:37.000Z","updated":null}}"#
            )
        );
        assert_eq!(frame(Style::Uuid, &event, Viewer::Admin), r#"{"uuid":"00000000-0000-0000-0000-000000000000"}"#);
    }
}
