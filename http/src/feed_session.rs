//! A live feed's WebSocket session, for every protocol's feeds: relays an engine
//! [`Subscription`] to the socket, pings the client every [`HEARTBEAT_INTERVAL`] (and, where the
//! feed has them, sends a text heartbeat with the last delivered `seq`), closes when nothing
//! came back for [`CLIENT_TIMEOUT`], and closes a client that does not keep up with
//! [`CLOSE_SLOW_CONSUMER`] and the `since=` to resume from. The subscription is dropped, i.e.
//! unsubscribed, whichever way the session ends. The protocol supplies the frames.

use std::pin::pin;
use std::time::Duration;

use actix_web::rt::time::{interval_at, timeout, Instant};
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason, Message, MessageStream, Session};
use cashgrid_actors::feed_hub::{self, FeedItem, FeedSource, Subscription};
use cashgrid_actors::EngineError;
use futures_util::future::{select, Either};
use futures_util::StreamExt as _;
use serde::Serialize;

use crate::time::iso_millis;

/// How often the server pings (and, on feeds with text heartbeats, sends one).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// A client from which nothing (not even a pong) arrived for this long is disconnected.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest one frame may wait for room in the socket's outbound buffer.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest the closing handshake may wait for room in the outbound buffer.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Largest frame a client may send; clients have nothing to say beyond pongs.
pub const CLIENT_FRAME_MAX_BYTES: usize = 4 * 1024;
/// Close code for a subscriber that fell too far behind; the reason names `since=<seq>`.
pub const CLOSE_SLOW_CONSUMER: u16 = 4001;

/// How a feed renders its records, and whether it sends text heartbeats.
pub struct Frames<R> {
    pub render: Box<dyn Fn(&R) -> String>,
    pub heartbeats: bool,
}

/// What the handshake decided.
pub enum Start<S: FeedSource> {
    Subscribed(Subscription<S>, Frames<S::Record>),
    /// Unknown key or path: closed at once without a code (clients see 1005).
    Refused,
    /// Closed at once with this code and reason.
    Closed(CloseReason),
}

/// Whether the request asks for a WebSocket.
pub fn is_upgrade(request: &HttpRequest) -> bool {
    request
        .headers()
        .get(actix_web::http::header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("websocket"))
}

/// A `since` that is not a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadSince;

/// `since` absent: live only. Present: a sequence number, replayed from.
pub fn parse_since(value: Option<&str>) -> Result<Option<i64>, BadSince> {
    match value {
        None => Ok(None),
        Some(text) => match text.parse::<i64>() {
            Ok(since) if since >= 0 => Ok(Some(since)),
            Ok(_) | Err(_) => Err(BadSince),
        },
    }
}

pub fn unavailable<S: FeedSource>(error: &EngineError) -> Start<S> {
    tracing::warn!(%error, "live feed subscription refused");
    Start::Closed(reason(CloseCode::Again, "feed unavailable; try again later".into()))
}

pub fn reason(code: CloseCode, description: String) -> CloseReason {
    CloseReason { code, description: Some(description) }
}

fn slow_consumer(delivered: i64) -> CloseReason {
    reason(CloseCode::Other(CLOSE_SLOW_CONSUMER), format!("slow consumer; resume with since={delivered}"))
}

/// Accept the upgrade and start what the handshake decided.
pub fn upgrade<S: FeedSource>(
    request: &HttpRequest,
    body: web::Payload,
    start: Start<S>,
) -> Result<HttpResponse, actix_web::Error> {
    let (response, session, messages) = actix_ws::handle(request, body)?;
    match start {
        Start::Subscribed(subscription, frames) => {
            actix_web::rt::spawn(run_session(subscription, session, messages, frames));
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

enum Input<R> {
    Feed(Result<FeedItem<R>, cashgrid_actors::store::StoreError>),
    Client(Option<Result<Message, actix_ws::ProtocolError>>),
    Tick,
}

enum SendFailure {
    /// The connection is gone.
    Closed,
    /// The client does not read.
    Timeout,
}

/// A heartbeat tick of a session: close a client silent for [`CLIENT_TIMEOUT`] (`Err` with the
/// reason), else ping it (`Err(None)`: the connection is gone).
pub(crate) async fn ping_or_close(session: &mut Session, last_heard: Instant) -> Result<(), Option<CloseReason>> {
    if last_heard.elapsed() > CLIENT_TIMEOUT {
        return Err(Some(reason(CloseCode::Away, "heartbeat timeout".into())));
    }
    match timeout(SEND_TIMEOUT, session.ping(b"")).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(None),
    }
}

/// Answer a client's ping; `false` when the connection is gone.
pub(crate) async fn pong(session: &mut Session, bytes: &[u8]) -> bool {
    matches!(timeout(SEND_TIMEOUT, session.pong(bytes)).await, Ok(Ok(())))
}

async fn send_text(session: &mut Session, text: String) -> Result<(), SendFailure> {
    match timeout(SEND_TIMEOUT, session.text(text)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(SendFailure::Closed),
        Err(_) => Err(SendFailure::Timeout),
    }
}

/// Relay a subscription to one client until either side ends it.
async fn run_session<S: FeedSource>(
    mut subscription: Subscription<S>,
    mut session: Session,
    messages: MessageStream,
    frames: Frames<S::Record>,
) {
    let feed = subscription.label();
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
            Input::Feed(Ok(FeedItem::Event(event))) => match send_text(&mut session, (frames.render)(&event)).await {
                Ok(()) => delivered = S::seq(&event),
                Err(SendFailure::Closed) => break None,
                Err(SendFailure::Timeout) => {
                    feed_hub::record_slow_consumer(feed);
                    break Some(slow_consumer(delivered));
                }
            },
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
                        if !pong(&mut session, &bytes).await {
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
                if let Err(close) = ping_or_close(&mut session, last_heard).await {
                    break close;
                }
                if frames.heartbeats {
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

#[derive(Serialize)]
struct HeartbeatFrame {
    heartbeat: Option<String>,
    seq: i64,
}

pub fn heartbeat_frame(delivered: i64) -> String {
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
        assert_eq!(parse_since(Some("-1")), Err(BadSince));
        assert_eq!(parse_since(Some("x")), Err(BadSince));
        assert_eq!(parse_since(Some("")), Err(BadSince));
    }
}
