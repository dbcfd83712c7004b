//! A cash device's trigger socket (`GET /dnapi/cash/v1/trigger/ws?device_uuid=C`, a cashgrid
//! addition): every token a phone locks onto device C through a trigger code is pushed as a
//! text frame `{"triggercode":T,"token":<V-locked>}` — the payload the original published
//! on MQTT and Redis — so an ATM needs no long poll per trigger.
//!
//! One task per session. The server pings every `HEARTBEAT_INTERVAL` and closes a session
//! that sends nothing (not even a pong) for `CLIENT_TIMEOUT`, or that does not take a frame
//! within `SEND_TIMEOUT`. Pushes wait in a bounded buffer (`SOCKET_BUFFER` in the engine); a
//! session that falls that far behind is closed with 1013 "try again later". Incoming frames
//! other than pings and close are ignored. However the task ends, dropping the feed
//! unsubscribes it.

use std::time::{Duration, Instant};

use actix_web::rt::time::{interval_at, timeout};
use actix_ws::{CloseCode, CloseReason, Message, MessageStream, ProtocolError, Session};
use cashgrid_actors::engine::trigger::TriggerFeed;
use cashgrid_actors::trigger_actor::TriggerPush;
use futures_util::stream::{self, StreamExt as _};
use serde::Serialize;

use super::views::{TokenJson, TokenView};

/// How often the server pings an idle socket.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(15);
/// A socket that sends nothing for this long is closed.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(45);
/// Longest the server waits for the connection to take one frame.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest frame accepted from the client (it has nothing to say beyond pings).
pub const MAX_FRAME_BYTES: usize = 4 * 1024;

#[derive(Serialize)]
struct PushFrame<'a> {
    triggercode: &'a str,
    token: TokenJson<'a>,
}

/// The text frame for one push.
pub fn push_frame(push: &TriggerPush) -> String {
    let frame = PushFrame { triggercode: &push.code, token: TokenJson::of(&push.token, TokenView::Locked) };
    serde_json::to_string(&frame).unwrap_or_else(|error| {
        tracing::error!(%error, "trigger push could not be serialised");
        String::from("{}")
    })
}

enum Event {
    Incoming(Result<Message, ProtocolError>),
    ClientGone,
    Push(Box<TriggerPush>),
    FeedClosed,
    Tick,
}

/// Drive one session until either side ends it.
pub async fn run(mut session: Session, incoming: MessageStream, feed: TriggerFeed) {
    let incoming =
        incoming.max_frame_size(MAX_FRAME_BYTES).map(Event::Incoming).chain(stream::once(async { Event::ClientGone }));
    let pushes = stream::unfold(Some(feed), |feed| async move {
        let mut feed = feed?;
        match feed.next().await {
            Some(push) => Some((Event::Push(Box::new(push)), Some(feed))),
            None => Some((Event::FeedClosed, None)),
        }
    });
    let start = actix_web::rt::time::Instant::now() + HEARTBEAT_INTERVAL;
    let ticks = stream::unfold(interval_at(start, HEARTBEAT_INTERVAL), |mut ticks| async move {
        ticks.tick().await;
        Some((Event::Tick, ticks))
    });
    let mut events = Box::pin(stream::select(stream::select(incoming, pushes), ticks));
    let mut last_heard = Instant::now();
    let reason = loop {
        let Some(event) = events.next().await else {
            break None;
        };
        match event {
            Event::Incoming(Ok(Message::Ping(bytes))) => {
                last_heard = Instant::now();
                if !sent(timeout(SEND_TIMEOUT, session.pong(&bytes)).await) {
                    break None;
                }
            }
            Event::Incoming(Ok(Message::Close(_))) => break Some(CloseReason::from(CloseCode::Normal)),
            Event::Incoming(Ok(_)) => last_heard = Instant::now(),
            Event::Incoming(Err(error)) => {
                tracing::debug!(%error, "trigger socket protocol error");
                break Some(CloseReason::from(CloseCode::Protocol));
            }
            Event::ClientGone => break None,
            Event::Push(push) => {
                if !sent(timeout(SEND_TIMEOUT, session.text(push_frame(&push))).await) {
                    break None;
                }
            }
            Event::FeedClosed => {
                break Some(CloseReason { code: CloseCode::Again, description: Some("too slow".into()) });
            }
            Event::Tick => {
                if last_heard.elapsed() >= CLIENT_TIMEOUT {
                    break Some(CloseReason { code: CloseCode::Away, description: Some("timeout".into()) });
                }
                if !sent(timeout(SEND_TIMEOUT, session.ping(b"")).await) {
                    break None;
                }
            }
        }
    };
    // Unsubscribe before the close handshake, which may take its time.
    drop(events);
    if let Some(reason) = reason {
        let _ = timeout(SEND_TIMEOUT, session.close(Some(reason))).await;
    }
}

fn sent<E>(outcome: Result<Result<(), actix_ws::Closed>, E>) -> bool {
    matches!(outcome, Ok(Ok(())))
}
