//! One Crypto Capital connection (fact sheet §3, §6): the server sends a fresh random
//! `challenge`, the client answers with `auth` (the challenge signed by its Bitcoin key), and
//! every op after that is answered exactly once, with its nonce. A client's mistake is an
//! `error` message and the connection stays open; it is closed only for abuse (too many failed
//! `auth` attempts, oversized or non-text frames, silence).

use std::pin::pin;

use actix_web::rt::time::{interval_at, timeout, Instant};
use actix_ws::{CloseCode, CloseReason, Message, MessageStream, Session};
use cashgrid_actors::crypto::bitcoin_message::{self, Address};
use futures_util::future::{select, Either};
use futures_util::StreamExt as _;
use rand::distributions::{Alphanumeric, DistString};
use serde_json::Number;

use std::collections::{HashSet, VecDeque};

use cashgrid_actors::domain::ledger::TransferId;
use cashgrid_actors::engine::ccc::FEED_LABEL;
use cashgrid_actors::feed_hub::{self, FeedItem, LedgerEntries, Subscription};
use cashgrid_actors::store::{LedgerEntry, StoreError};
use cashgrid_actors::Engine;

use super::limits::Held;
use super::metrics as m;
use super::ops;
use super::protocol::{self, Op};
use crate::feed_session::{ping_or_close, pong, reason, CLOSE_TIMEOUT, HEARTBEAT_INTERVAL, SEND_TIMEOUT};

/// Characters of a challenge: lower-case letters and digits, as the original's sample.
const CHALLENGE_CHARS: usize = 16;
/// Largest frame a client may send (a transfer op is a few hundred bytes).
pub const FRAME_MAX_BYTES: usize = 16 * 1024;
/// Failed `auth` attempts a connection may make; the next closes it.
pub const AUTH_ATTEMPTS_MAX: u32 = 5;
/// Ops a connection may send per second on average, and in one burst; an op beyond them is
/// answered with an `error` and not run.
pub const OPS_PER_SECOND: f64 = 100.0;
pub const OPS_BURST: f64 = 200.0;
/// Close code for a client that abused the protocol.
const CLOSE_ABUSE: CloseCode = CloseCode::Policy;

/// What the connection knows.
struct Connection {
    engine: Option<Engine>,
    /// Its place in the per-host and per-address counts.
    held: Option<Held>,
    challenge: String,
    /// The address that authenticated, once one has.
    address: Option<Address>,
    failed_auths: u32,
    budget: Budget,
    /// The journal of the address's accounts, once authenticated (its notifications).
    subscription: Option<Subscription<LedgerEntries>>,
    /// Transfers this connection made itself: answered with the op's nonce, so their journal
    /// lines send no nonce-less copy here.
    own: OwnTransfers,
    /// What its `account` notifications show, kept current from its journal lines.
    shown: Option<ops::Shown>,
}

/// The newest transfers a connection made, bounded.
#[derive(Default)]
struct OwnTransfers {
    order: VecDeque<TransferId>,
    ids: HashSet<TransferId>,
}

impl OwnTransfers {
    /// More than a connection can have in flight before their lines arrive.
    const MAX: usize = 4096;

    fn insert(&mut self, id: TransferId) {
        if self.ids.insert(id) {
            self.order.push_back(id);
        }
        while self.order.len() > Self::MAX {
            if let Some(oldest) = self.order.pop_front() {
                self.ids.remove(&oldest);
            }
        }
    }

    fn contains(&self, id: TransferId) -> bool {
        self.ids.contains(&id)
    }
}

/// A token bucket of ops.
struct Budget {
    tokens: f64,
    refilled: Instant,
}

impl Budget {
    fn new() -> Self {
        Self { tokens: OPS_BURST, refilled: Instant::now() }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * OPS_PER_SECOND).min(OPS_BURST);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What an op comes to: messages to send, and whether to close after them.
struct Answer {
    messages: Vec<String>,
    close: Option<CloseReason>,
}

impl Answer {
    fn one(message: String) -> Self {
        Self { messages: vec![message], close: None }
    }

    fn error(nonce: Option<&Number>, text: &str) -> Self {
        Self::one(protocol::text("error", nonce, text))
    }
}

impl Connection {
    /// A connection served by `engine` (`None` in tests of the handshake alone).
    fn new(engine: Option<Engine>) -> Self {
        let challenge = Alphanumeric.sample_string(&mut rand::rngs::OsRng, CHALLENGE_CHARS).to_ascii_lowercase();
        Self {
            engine,
            held: None,
            challenge,
            address: None,
            failed_auths: 0,
            budget: Budget::new(),
            subscription: None,
            own: OwnTransfers::default(),
            shown: None,
        }
    }

    async fn receive(&mut self, text: &str) -> Answer {
        let started = std::time::Instant::now();
        let op = match protocol::parse(text) {
            Ok(op) => op,
            Err(bad) => {
                m::record_op("invalid", "error", started.elapsed());
                return Answer::error(bad.nonce.as_ref(), bad.message);
            }
        };
        let name = m::op_label(&op.name);
        if !self.budget.take() {
            m::record_op(name, "rate_limited", started.elapsed());
            return Answer::error(op.nonce.as_ref(), "Too many requests: slow down");
        }
        let (answer, failed) = match (op.name.as_str(), &self.address, &self.engine) {
            ("auth", None, _) => self.auth(&op).await,
            ("auth", Some(_), _) => (Answer::error(op.nonce.as_ref(), "Already authenticated"), true),
            (_, None, _) => {
                (Answer::error(op.nonce.as_ref(), "Not authenticated: answer the challenge with auth first"), true)
            }
            (_, Some(address), Some(engine)) => {
                let reply = ops::run(engine, address, &op).await;
                if let Some(id) = reply.transfer {
                    self.own.insert(id);
                }
                (Answer { messages: reply.messages, close: None }, reply.failed)
            }
            (_, Some(_), None) => (Answer::error(op.nonce.as_ref(), "Service unavailable"), true),
        };
        m::record_op(name, if failed { "error" } else { "ok" }, started.elapsed());
        answer
    }

    /// Check the challenge's signature against the address in `key`, and subscribe to its
    /// notifications; whether it failed.
    async fn auth(&mut self, op: &Op) -> (Answer, bool) {
        let nonce = op.nonce.as_ref();
        let (Ok(Some(key)), Ok(Some(signature))) = (ops::text(&op.params, "key"), ops::text(&op.params, "signature"))
        else {
            return (Answer::error(nonce, "auth needs params key (a Bitcoin address) and signature"), true);
        };
        let verified =
            Address::parse(&key).map_err(|_| "Invalid key: not a Bitcoin P2PKH address").and_then(|address| {
                bitcoin_message::verify(&address, self.challenge.as_bytes(), &signature)
                    .map(|()| address)
                    .map_err(|_| "Invalid signature")
            });
        match verified {
            Ok(address) => {
                if let Some(held) = &mut self.held {
                    if !held.authenticate(address.as_str()) {
                        m::record_auth("refused");
                        return (Answer::error(nonce, "Too many sockets for this address"), true);
                    }
                }
                if let Some(engine) = &self.engine {
                    match engine.ccc().subscribe(address.as_str()).await {
                        Ok(subscription) => self.subscription = Some(subscription),
                        Err(error) => {
                            tracing::warn!(%error, "ccc: notifications unavailable");
                            return (Answer::error(nonce, "Service busy, try again"), true);
                        }
                    }
                }
                m::record_auth("ok");
                self.address = Some(address);
                (Answer::one(protocol::text("auth", nonce, "User Authenticated")), false)
            }
            Err(text) => {
                m::record_auth("refused");
                self.failed_auths += 1;
                let mut answer = Answer::error(nonce, text);
                if self.failed_auths >= AUTH_ATTEMPTS_MAX {
                    answer.close = Some(reason(CLOSE_ABUSE, "too many failed auth attempts".into()));
                }
                (answer, true)
            }
        }
    }
}

impl Connection {
    /// The messages a journal line of the address's accounts calls for: the transfer (unless
    /// this connection made it and was answered already) and the fresh balances.
    async fn notify(&mut self, line: &LedgerEntry) -> Vec<String> {
        let (Some(engine), Some(address)) = (&self.engine, &self.address) else {
            return Vec::new();
        };
        let shown = match engine.ccc().notification(address.as_str(), line).await {
            Ok(Some(shown)) => shown,
            Ok(None) => return Vec::new(),
            Err(error) => {
                tracing::warn!(%error, "ccc: a notification could not be read");
                return Vec::new();
            }
        };
        // The line of a transfer this connection made (not a later step of it, such as a
        // payout's outcome or expiry).
        let own = line.kind != "expired" && line.transfer.is_some_and(|id| self.own.contains(id));
        ops::notifications(engine, address, line, &shown, own, &mut self.shown).await
    }
}

enum Input {
    Client(Option<Result<Message, actix_ws::ProtocolError>>),
    Journal(Result<FeedItem<LedgerEntry>, StoreError>),
    Tick,
}

/// The next journal line of a subscription; never, without one.
async fn next_line(
    subscription: &mut Option<Subscription<LedgerEntries>>,
) -> Result<FeedItem<LedgerEntry>, StoreError> {
    match subscription {
        Some(subscription) => subscription.next().await,
        None => std::future::pending().await,
    }
}

/// Serve one connection until either side ends it.
pub async fn run(engine: Engine, held: Held, mut session: Session, messages: MessageStream) {
    let _open = m::Open::connection();
    let mut connection = Connection::new(Some(engine));
    connection.held = Some(held);
    let close = serve(&mut connection, &mut session, messages).await;
    if let Some(close) = close {
        let _ = timeout(CLOSE_TIMEOUT, session.close(Some(close))).await;
    }
}

async fn serve(connection: &mut Connection, session: &mut Session, messages: MessageStream) -> Option<CloseReason> {
    let mut messages = messages.max_frame_size(FRAME_MAX_BYTES);
    if !send(session, protocol::text("challenge", None, &connection.challenge)).await {
        return None;
    }
    let mut heartbeat = interval_at(Instant::now() + HEARTBEAT_INTERVAL, HEARTBEAT_INTERVAL);
    let mut last_heard = Instant::now();
    loop {
        let input = {
            let client = pin!(messages.next());
            let tick = pin!(heartbeat.tick());
            let journal = pin!(next_line(&mut connection.subscription));
            match select(client, select(journal, tick)).await {
                Either::Left((message, _)) => Input::Client(message),
                Either::Right((Either::Left((line, _)), _)) => Input::Journal(line),
                Either::Right((Either::Right(_), _)) => Input::Tick,
            }
        };
        match input {
            Input::Client(Some(Ok(message))) => {
                last_heard = Instant::now();
                match message {
                    Message::Text(text) => {
                        let answer = connection.receive(&text).await;
                        for message in answer.messages {
                            if !send(session, message).await {
                                return None;
                            }
                        }
                        if answer.close.is_some() {
                            return answer.close;
                        }
                    }
                    Message::Ping(bytes) => {
                        if !pong(session, &bytes).await {
                            return None;
                        }
                    }
                    Message::Close(_) => return Some(reason(CloseCode::Normal, "bye".into())),
                    Message::Binary(_) | Message::Continuation(_) => {
                        return Some(reason(CloseCode::Unsupported, "text frames only".into()));
                    }
                    Message::Pong(_) | Message::Nop => {}
                }
            }
            Input::Client(Some(Err(error))) => {
                tracing::debug!(%error, "ccc: websocket protocol error");
                return Some(reason(CloseCode::Protocol, "protocol error".into()));
            }
            Input::Client(None) => return None,
            Input::Journal(Ok(FeedItem::Event(line))) => {
                for message in connection.notify(&line).await {
                    if !send(session, message).await {
                        return None;
                    }
                }
            }
            Input::Journal(Ok(FeedItem::Lagged)) => {
                feed_hub::record_slow_consumer(FEED_LABEL);
                return Some(reason(CLOSE_ABUSE, "too slow to read the notifications".into()));
            }
            Input::Journal(Ok(FeedItem::Closed)) => return Some(reason(CloseCode::Restart, "server stopping".into())),
            Input::Journal(Err(error)) => {
                tracing::warn!(%error, "ccc: notifications failed");
                return Some(reason(
                    CloseCode::Error,
                    "notifications unavailable; reconnect and replay history".into(),
                ));
            }
            Input::Tick => {
                if let Err(close) = ping_or_close(session, last_heard).await {
                    return close;
                }
            }
        }
    }
}

/// Send one frame; `false` when the connection is gone or the client does not read.
async fn send(session: &mut Session, text: String) -> bool {
    matches!(timeout(SEND_TIMEOUT, session.text(text)).await, Ok(Ok(())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cashgrid_actors::crypto::bitcoin_message::MessageKey;

    fn auth_op(key: &str, signature: &str) -> String {
        serde_json::json!({"op": "auth", "nonce": 1, "params": {"key": key, "signature": signature}}).to_string()
    }

    #[test]
    fn challenges_are_fresh_lower_case_alphanumerics() {
        let one = Connection::new(None).challenge;
        let other = Connection::new(None).challenge;
        assert_eq!(one.len(), CHALLENGE_CHARS);
        assert!(one.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        assert_ne!(one, other);
    }

    #[actix_web::test]
    async fn a_signed_challenge_authenticates_once_and_other_ops_wait_for_it() {
        let key = MessageKey::generate();
        let mut connection = Connection::new(None);
        let early = connection.receive(r#"{"op":"getinfo","nonce":2}"#).await;
        assert!(early.messages[0].starts_with(r#"{"msg":"error","nonce":2,"#));
        let signature = key.sign(connection.challenge.as_bytes()).unwrap_or_default();
        let answer = connection.receive(&auth_op(key.address().as_str(), &signature)).await;
        assert_eq!(answer.messages, [r#"{"msg":"auth","nonce":1,"data":"User Authenticated"}"#]);
        let again = connection.receive(&auth_op(key.address().as_str(), &signature)).await;
        assert_eq!(again.messages, [r#"{"msg":"error","nonce":1,"data":"Already authenticated"}"#]);
    }

    #[actix_web::test]
    async fn a_signature_of_another_challenge_or_by_another_key_is_refused() {
        let key = MessageKey::generate();
        let mut connection = Connection::new(None);
        let other = Connection::new(None);
        let replayed = key.sign(other.challenge.as_bytes()).unwrap_or_default();
        let answer = connection.receive(&auth_op(key.address().as_str(), &replayed)).await;
        assert_eq!(answer.messages, [r#"{"msg":"error","nonce":1,"data":"Invalid signature"}"#]);
        let signature = key.sign(connection.challenge.as_bytes()).unwrap_or_default();
        let stranger = MessageKey::generate();
        let answer = connection.receive(&auth_op(stranger.address().as_str(), &signature)).await;
        assert_eq!(answer.messages, [r#"{"msg":"error","nonce":1,"data":"Invalid signature"}"#]);
        assert!(connection.address.is_none());
    }

    #[actix_web::test]
    async fn repeated_failed_auths_close_the_connection() {
        let key = MessageKey::generate();
        let mut connection = Connection::new(None);
        for attempt in 1..=AUTH_ATTEMPTS_MAX {
            let answer = connection.receive(&auth_op(key.address().as_str(), "bm90IGEgc2lnbmF0dXJl")).await;
            assert_eq!(answer.close.is_some(), attempt == AUTH_ATTEMPTS_MAX, "attempt {attempt}");
        }
    }

    #[actix_web::test]
    async fn a_burst_beyond_the_budget_is_answered_with_errors_and_not_run() {
        let mut connection = Connection::new(None);
        let mut refused = 0;
        for _ in 0..OPS_BURST as usize + 10 {
            let answer = connection.receive(r#"{"op":"nope"}"#).await;
            refused += usize::from(answer.messages[0].contains("Too many requests"));
        }
        assert!((1..=10).contains(&refused), "{refused} refused");
    }
}
