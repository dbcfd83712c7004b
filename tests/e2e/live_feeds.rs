//! Live feeds over WebSocket: the original's `{"uuid":…}` change feeds with their recipients
//! (§12), and the resumable event feed: every state change, in order, without a gap across a
//! reconnect, and a clear close for a consumer that stops reading.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use awc::error::WsProtocolError;
use awc::ws::{CloseReason, Frame, Message};
use futures_util::future::join_all;
use futures_util::{Sink, SinkExt as _, Stream, StreamExt as _};
use serde_json::{json, Value};

use crate::api::Creds;
use crate::flows::{token_path, uuid_of, Scene};
use crate::harness::{Backend, TestEnv};
use crate::wire::now_millis;

/// Longest a test waits for one frame that must come.
const FRAME_TIMEOUT: Duration = Duration::from_secs(20);
/// Largest frame the test client accepts (events carry token snapshots with `info`).
const CLIENT_FRAME_MAX_BYTES: usize = 1024 * 1024;
/// The server's close code for a consumer that fell behind.
const CLOSE_SLOW_CONSUMER: u16 = 4001;

trait WsStream: Stream<Item = Result<Frame, WsProtocolError>> + Sink<Message, Error = WsProtocolError> + Unpin {}
impl<T> WsStream for T where
    T: Stream<Item = Result<Frame, WsProtocolError>> + Sink<Message, Error = WsProtocolError> + Unpin
{
}

/// What a feed client received next.
#[derive(Debug)]
pub enum Received {
    Text(String),
    Close(Option<CloseReason>),
    /// The connection ended without a close frame.
    Ended,
}

/// A WebSocket client of one feed. It answers pings, as every WebSocket client must.
pub struct FeedClient {
    socket: Box<dyn WsStream>,
}

/// `ws://127.0.0.1:<port>` of the running server, read from its "listening" line.
pub fn ws_base(env: &TestEnv) -> String {
    let newest = std::fs::read_dir(&env.store.logs_dir)
        .expect("the test's log directory")
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.to_string_lossy().ends_with(".stdout.log"))
        .max_by_key(|path| std::fs::metadata(path).and_then(|meta| meta.modified()).ok())
        .expect("a server stdout log");
    let log = std::fs::read_to_string(&newest).expect("the server stdout log");
    let address =
        log.lines().find_map(|line| line.split("cashgrid listening on http://").nth(1)).expect("the listening line");
    format!("ws://{}", address.trim())
}

impl FeedClient {
    pub async fn connect(env: &TestEnv, path: &str) -> Self {
        Self::connect_with_headers(env, path, &[]).await
    }

    /// Connect sending these headers with the upgrade (credentials).
    pub async fn connect_with_headers(env: &TestEnv, path: &str, headers: &[(&str, &str)]) -> Self {
        Self::connect_url(&format!("{}{path}", ws_base(env)), headers).await
    }

    /// Connect to a full `ws://` URL.
    pub async fn connect_url(url: &str, headers: &[(&str, &str)]) -> Self {
        let path = url;
        let mut request = awc::Client::new().ws(url).max_frame_size(CLIENT_FRAME_MAX_BYTES);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let (response, socket) = request.connect().await.unwrap_or_else(|error| panic!("WebSocket {path}: {error}"));
        assert_eq!(response.status().as_u16(), 101, "{path} upgrades");
        Self { socket: Box::new(socket) }
    }

    /// The next text frame or close, answering pings; `None` if nothing came `within`.
    pub async fn receive(&mut self, within: Duration) -> Option<Received> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = match tokio::time::timeout(left, self.socket.next()).await {
                Err(_) => return None,
                Ok(None) | Ok(Some(Err(_))) => return Some(Received::Ended),
                Ok(Some(Ok(frame))) => frame,
            };
            match frame {
                Frame::Text(bytes) => return Some(Received::Text(String::from_utf8_lossy(&bytes).into_owned())),
                Frame::Close(reason) => return Some(Received::Close(reason)),
                Frame::Ping(bytes) => {
                    let _ = self.socket.send(Message::Pong(bytes)).await;
                }
                Frame::Pong(_) | Frame::Binary(_) | Frame::Continuation(_) => {}
            }
        }
    }

    /// Send a text frame, which must go out.
    pub async fn send_text(&mut self, text: String) {
        self.socket.send(Message::Text(text.into())).await.expect("a text frame sent");
    }

    /// The next text frame, which must come.
    pub async fn text(&mut self) -> String {
        match self.receive(FRAME_TIMEOUT).await {
            Some(Received::Text(text)) => text,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// The next event of the event feed (heartbeats skipped), which must come.
    pub async fn event(&mut self) -> Value {
        loop {
            let text = self.text().await;
            let frame: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
            if frame.get("heartbeat").is_some() {
                assert!(frame["seq"].is_i64(), "a heartbeat carries the last seq: {frame}");
                continue;
            }
            return frame;
        }
    }

    /// The `uuid` of the next frame of an original feed, which must come.
    pub async fn changed_uuid(&mut self) -> String {
        let text = self.text().await;
        let frame: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        assert_eq!(frame.as_object().map(|fields| fields.len()), Some(1), "only a uuid: {text}");
        uuid_of(&frame)
    }

    /// The server closes at once: a close frame without a code, as the original's `ws.close()`.
    pub async fn assert_closed_without_code(&mut self, what: &str) {
        match self.receive(FRAME_TIMEOUT).await {
            Some(Received::Close(None)) | Some(Received::Ended) => {}
            other => panic!("{what}: expected an immediate close without code, got {other:?}"),
        }
    }
}

fn events_path(key: &str, since: Option<i64>) -> String {
    match since {
        Some(since) => format!("/dnapi/tokenws/v1/events/{key}?since={since}"),
        None => format!("/dnapi/tokenws/v1/events/{key}"),
    }
}

fn token_changes_path(creds: &Creds) -> String {
    format!("/dnapi/tokenws/v1/tokenchange/{}", creds.apikey)
}

fn clearing_changes_path(creds: &Creds) -> String {
    format!("/dnapi/clearingws/v1/change/{}", creds.apikey)
}

/// Tokens the bank issues in the big scenario, how many of them it then cashes out and how
/// many it withdraws, and how many requests run at once.
const TOKENS: usize = 1_000;
const CASHED_OUT: usize = 100;
const DELETED: usize = 50;
const CONCURRENCY: usize = 50;
/// Events after which the reader drops its connection and resumes.
const RECONNECT_AFTER: usize = 400;

pub async fn a_bank_sees_every_state_change_of_a_thousand_tokens_in_order_across_a_reconnect(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let scene = env.scene("bank@example.com").await;
    let expected_events = TOKENS + 2 * CASHED_OUT + DELETED;

    let feed = FeedClient::connect(&env, &events_path(&scene.bank.apikey, Some(0))).await;
    let (tokens, received) = futures_util::future::join(
        run_bank_day(&env, &scene),
        read_with_reconnect(&env, &scene.bank, feed, expected_events),
    )
    .await;

    // In order, no duplicate: sequence numbers strictly increase across the reconnect.
    let seqs: Vec<i64> = received.iter().map(|event| event["seq"].as_i64().expect("seq")).collect();
    assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "sequence numbers increase: {seqs:?}");
    // No gap: every token's every change arrived, in its own order, with its snapshot.
    let mut by_token: HashMap<String, Vec<&Value>> = HashMap::new();
    for event in &received {
        assert_eq!(event["token"]["uuid"], event["uuid"], "{event}");
        assert_eq!(event["token"]["state"], event["to"], "the snapshot is the state after: {event}");
        by_token.entry(uuid_of(event)).or_default().push(event);
    }
    assert_eq!(by_token.len(), TOKENS, "every token appears");
    for (index, uuid) in tokens.iter().enumerate() {
        let events = &by_token[uuid];
        let kinds: Vec<&str> = events.iter().map(|event| event["event"].as_str().expect("event")).collect();
        let expected: &[&str] = if index < CASHED_OUT {
            &["created", "locked", "confirmed"]
        } else if index < CASHED_OUT + DELETED {
            &["created", "deleted"]
        } else {
            &["created"]
        };
        assert_eq!(kinds, expected, "token {uuid}");
        let versions: Vec<i64> =
            events.iter().map(|event| event["token"]["version"].as_i64().expect("version")).collect();
        assert_eq!(versions, (1..=expected.len() as i64).collect::<Vec<_>>(), "token {uuid}");
        assert_eq!(events[0]["from"], Value::Null);
        assert_eq!(events[0]["to"], "OPEN");
    }
}

/// Issue [`TOKENS`] tokens, cash out the first [`CASHED_OUT`], withdraw the next [`DELETED`];
/// returns the token uuids in issue order.
async fn run_bank_day(env: &TestEnv, scene: &Scene) -> Vec<String> {
    let mut tokens = Vec::with_capacity(TOKENS);
    let mut issued = Vec::with_capacity(TOKENS);
    for batch in 0..TOKENS.div_ceil(CONCURRENCY) {
        let count = CONCURRENCY.min(TOKENS - batch * CONCURRENCY);
        let replies = join_all((0..count).map(|_| env.issue(&scene.bank, &scene.phone, 1000))).await;
        for token in replies {
            tokens.push(uuid_of(&token));
            issued.push(token);
        }
    }
    for batch in issued[..CASHED_OUT].chunks(CONCURRENCY) {
        join_all(batch.iter().map(|token| async move {
            env.claim_ok(&scene.cash, &scene.atm, token, &scene.phone).await;
            let reply = env.confirm(&scene.cash, &scene.atm, &uuid_of(token), json!({"state": "COMPLETED"})).await;
            assert_eq!(reply.ok()["state"], "COMPLETED");
        }))
        .await;
    }
    let withdrawn = &tokens[CASHED_OUT..CASHED_OUT + DELETED];
    for batch in withdrawn.chunks(CONCURRENCY) {
        join_all(batch.iter().map(|uuid| async move {
            let path = format!("{}?device_uuid={}", token_path(uuid), scene.phone.uuid);
            env.api.delete(&path, &scene.bank).await.ok();
        }))
        .await;
    }
    tokens
}

/// Read `expected` events; after [`RECONNECT_AFTER`] drop the connection, wait a little (the
/// bank keeps working meanwhile) and resume with `since=<last seq>`.
async fn read_with_reconnect(env: &TestEnv, bank: &Creds, mut feed: FeedClient, expected: usize) -> Vec<Value> {
    let mut received = Vec::with_capacity(expected);
    while received.len() < RECONNECT_AFTER {
        received.push(feed.event().await);
    }
    drop(feed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let last_seq = received.last().and_then(|event| event["seq"].as_i64()).expect("a seq");
    let mut feed = FeedClient::connect(env, &events_path(&bank.apikey, Some(last_seq))).await;
    while received.len() < expected {
        received.push(feed.event().await);
    }
    received
}

pub async fn the_original_feeds_tell_owner_cash_customer_and_admin_which_token_changed(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let bank = env.scene("bank@example.com").await;
    // A second customer runs the ATM that cashes the bank's token out.
    let operator = env.scene("atm-operator@example.com").await;
    let other = env.scene("other@example.com").await;
    env.cli_json(&["customer", "create", "--email", "admin@example.com", "--roles", "user,admin"]);
    let admin = env.access("admin@example.com", "token-api");
    let clearing = |email: &str| env.access(email, "clearing-api");
    let (bank_clearing, operator_clearing, other_clearing) =
        (clearing("bank@example.com"), clearing("atm-operator@example.com"), clearing("other@example.com"));

    let mut bank_feed = FeedClient::connect(&env, &token_changes_path(&bank.bank)).await;
    let mut operator_feed = FeedClient::connect(&env, &token_changes_path(&operator.bank)).await;
    let mut other_feed = FeedClient::connect(&env, &token_changes_path(&other.bank)).await;
    let mut admin_feed = FeedClient::connect(&env, &token_changes_path(&admin)).await;
    let mut bank_clearing_feed = FeedClient::connect(&env, &clearing_changes_path(&bank_clearing)).await;
    let mut operator_clearing_feed = FeedClient::connect(&env, &clearing_changes_path(&operator_clearing)).await;
    let mut other_clearing_feed = FeedClient::connect(&env, &clearing_changes_path(&other_clearing)).await;

    // A: issued by the bank, claimed and completed at the operator's ATM, then updated.
    let a = env.issue(&bank.bank, &bank.phone, 5000).await;
    env.claim_ok(&operator.cash, &operator.atm, &a, &bank.phone).await;
    env.confirm(&operator.cash, &operator.atm, &uuid_of(&a), json!({"state": "COMPLETED"})).await.ok();
    env.api.put(&token_path(&uuid_of(&a)), &bank.bank, json!({"clearstate": 1})).await.ok();
    // C: expires by itself (no frame for expiry).
    let c = env
        .issue_with(
            &bank.bank,
            json!({"device_uuid": bank.phone.uuid, "amount": 100, "symbol": "EUR", "expires": now_millis() + 500}),
        )
        .await
        .ok()
        .clone();
    let deadline = Instant::now() + FRAME_TIMEOUT;
    while env.token_state(&bank.bank, &uuid_of(&c)).await != "EXPIRED" {
        assert!(Instant::now() < deadline, "token C never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // B: issued and withdrawn.
    let b = env.issue(&bank.bank, &bank.phone, 700).await;
    let delete_path = format!("{}?device_uuid={}", token_path(&uuid_of(&b)), bank.phone.uuid);
    env.api.delete(&delete_path, &bank.bank).await.ok();
    // X: the other customer's own cash-out, the last change of the scenario.
    let x = env.issue(&other.bank, &other.phone, 300).await;
    env.claim_ok(&other.cash, &other.atm, &x, &other.phone).await;
    env.confirm(&other.cash, &other.atm, &uuid_of(&x), json!({"state": "COMPLETED"})).await.ok();

    let (a, b, c, x) = (uuid_of(&a), uuid_of(&b), uuid_of(&c), uuid_of(&x));
    // Create, lock, confirm of A; create of C; create and delete of B. No update, no expiry.
    let bank_sees = [&a, &a, &a, &c, &b, &b];
    for (index, expected) in bank_sees.into_iter().enumerate() {
        assert_eq!(&bank_feed.changed_uuid().await, expected, "bank frame {index}");
    }
    // The operator hears of the lock and the confirm it made on the bank's token only, and
    // the other customer only of its own token: the first frames they get are these.
    assert_eq!(operator_feed.changed_uuid().await, a);
    assert_eq!(operator_feed.changed_uuid().await, a);
    for index in 0..3 {
        assert_eq!(other_feed.changed_uuid().await, x, "other frame {index}");
    }
    // Admins hear of everything, in order.
    for (index, expected) in bank_sees.into_iter().chain([&x, &x, &x]).enumerate() {
        assert_eq!(&admin_feed.changed_uuid().await, expected, "admin frame {index}");
    }
    // Clearing: debitor and creditor of each completed cash-out.
    assert_eq!(bank_clearing_feed.changed_uuid().await, a);
    assert_eq!(operator_clearing_feed.changed_uuid().await, a);
    assert_eq!(other_clearing_feed.changed_uuid().await, x);
    // Nothing more for anyone: no frame for the update, the expiry, or other customers.
    for feed in [&mut bank_feed, &mut operator_feed, &mut other_feed, &mut admin_feed, &mut bank_clearing_feed] {
        assert!(feed.receive(Duration::from_millis(300)).await.is_none(), "no further frame");
    }
}

pub async fn unknown_keys_and_paths_are_closed_at_once(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let scene = env.scene("bank@example.com").await;
    let clearing = env.access("bank@example.com", "clearing-api");
    let refused = [
        ("an unknown key", "/dnapi/tokenws/v1/tokenchange/nosuchkey".to_owned()),
        ("a cash-api key on the token feed", token_changes_path(&scene.cash)),
        ("a token-api key on the clearing feed", clearing_changes_path(&scene.bank)),
        ("a clearing key on the event feed", events_path(&clearing.apikey, None)),
        ("an unknown path", "/dnapi/tokenws/v1/nothing/here".to_owned()),
        ("the admin feed without a session", "/dnapi/adminws/v1/tokenchange/admin".to_owned()),
    ];
    for (what, path) in refused {
        FeedClient::connect(&env, &path).await.assert_closed_without_code(what).await;
    }
    let bad_since = format!("/dnapi/tokenws/v1/events/{}?since=-3", scene.bank.apikey);
    let mut feed = FeedClient::connect(&env, &bad_since).await;
    match feed.receive(FRAME_TIMEOUT).await {
        Some(Received::Close(Some(reason))) => {
            assert_eq!(u16::from(reason.code), 1008, "{reason:?}")
        }
        other => panic!("a bad since closes with 1008, got {other:?}"),
    }
    // A plain GET on a feed path is an unknown route, as in the original.
    let reply = env.api.get_anonymous(&token_changes_path(&scene.bank)).await;
    reply.assert_status(500);
}

pub async fn the_admin_feed_needs_a_portal_session_and_says_change(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let root = env.portal_as("root@example.com", true).await;
    let user = env.portal_as("bank@example.com", false).await;
    let bank = env.scene_for(json!({"email": "bank@example.com"})).await;
    let bank_id = crate::admin::claims(&user.jwt)["id"].as_i64().expect("customer id");
    let other = env.scene("other@example.com").await;
    let admin_path = |id: &str, jwt: &str| format!("/dnapi/adminws/v1/tokenchange/{id}?token={jwt}");

    let refused = [
        ("a customer watching everyone", admin_path("admin", &user.jwt)),
        ("a customer watching another", admin_path(&(bank_id + 1).to_string(), &user.jwt)),
        ("a forged session", admin_path(&bank_id.to_string(), &format!("{}x", user.jwt))),
        ("no session", format!("/dnapi/adminws/v1/tokenchange/{bank_id}")),
    ];
    for (what, path) in refused {
        FeedClient::connect(&env, &path).await.assert_closed_without_code(what).await;
    }

    let mut own = FeedClient::connect(&env, &admin_path(&bank_id.to_string(), &user.jwt)).await;
    let mut watched_by_admin = FeedClient::connect(&env, &admin_path(&bank_id.to_string(), &root.jwt)).await;
    let mut everything = FeedClient::connect(&env, &admin_path("admin", &root.jwt)).await;
    let token = env.issue(&bank.bank, &bank.phone, 100).await;
    env.api.put(&token_path(&uuid_of(&token)), &bank.bank, json!({"clearstate": 2})).await.ok();
    env.issue(&other.bank, &other.phone, 100).await;
    for feed in [&mut own, &mut watched_by_admin] {
        assert_eq!(feed.text().await, "change", "the bank's token was issued");
    }
    for index in 0..2 {
        assert_eq!(everything.text().await, "change", "admin frame {index}");
    }
    // Neither the update nor the other customer's token concern the bank.
    for feed in [&mut own, &mut watched_by_admin, &mut everything] {
        assert!(feed.receive(Duration::from_millis(300)).await.is_none(), "no further frame");
    }
}

/// Size of the `info` each event snapshot carries in the slow-consumer scenario.
const LARGE_INFO_BYTES: usize = 90_000;
/// Per-subscriber buffer the slow-consumer server runs with.
const SMALL_FEED_BUFFER: &str = "8";
/// Updates made per round while the client does not read, and the most rounds.
const UPDATES_PER_ROUND: usize = 20;
const ROUNDS_MAX: usize = 50;

/// Resumptions a slow reader may need on a loaded machine before the test gives up.
const RESUMES_MAX: usize = 50;

pub async fn a_consumer_that_stops_reading_is_closed_with_the_seq_to_resume_from(backend: Backend) {
    let env = TestEnv::start_with(backend, &["--feed-buffer", SMALL_FEED_BUFFER]).await;
    let scene = env.scene("bank@example.com").await;
    let mut feed = FeedClient::connect(&env, &events_path(&scene.bank.apikey, Some(0))).await;
    let info = json!({"blob": "x".repeat(LARGE_INFO_BYTES)});
    let token = env
        .issue_with(&scene.bank, json!({"device_uuid": scene.phone.uuid, "amount": 100, "symbol": "EUR", "info": info}))
        .await
        .ok()
        .clone();
    let uuid = uuid_of(&token);

    // The client reads nothing while the token changes again and again.
    let mut updates: i64 = 0;
    for _ in 0..ROUNDS_MAX {
        let path = token_path(&uuid);
        join_all((0..UPDATES_PER_ROUND as i64).map(|round| {
            let body = json!({"clearstate": updates + round});
            let (env, path, bank) = (&env, &path, &scene.bank);
            async move { env.api.put(path, bank, body).await.ok().clone() }
        }))
        .await;
        updates += UPDATES_PER_ROUND as i64;
        if slow_consumers_dropped(&env).await >= 1 {
            break;
        }
    }
    assert_eq!(slow_consumers_dropped(&env).await, 1, "the consumer was dropped after {updates} updates");
    let last_version = updates + 1;

    // What was buffered arrives in order, then the close names where to resume.
    let mut versions = Vec::new();
    let mut last_seq = 0;
    let resume_from = loop {
        match feed.receive(FRAME_TIMEOUT).await {
            Some(Received::Text(text)) => {
                let event: Value = serde_json::from_str(&text).expect("JSON frame");
                if event.get("heartbeat").is_some() {
                    continue;
                }
                last_seq = event["seq"].as_i64().expect("seq");
                versions.push(event["token"]["version"].as_i64().expect("version"));
            }
            Some(Received::Close(Some(reason))) => {
                assert_eq!(u16::from(reason.code), CLOSE_SLOW_CONSUMER, "{reason:?}");
                let description = reason.description.unwrap_or_default();
                assert_eq!(description, format!("slow consumer; resume with since={last_seq}"));
                break last_seq;
            }
            other => panic!("expected events and then a close, got {other:?}"),
        }
    };
    assert!((versions.len() as i64) < last_version, "the consumer really fell behind");

    // Resuming from there loses nothing. A client that falls behind again (a loaded machine)
    // resumes again from the seq the close names, as any client of the feed would.
    let mut resume_from = resume_from;
    let mut resumes = 0;
    let mut feed = FeedClient::connect(&env, &events_path(&scene.bank.apikey, Some(resume_from))).await;
    while versions.last() != Some(&last_version) {
        match feed.receive(FRAME_TIMEOUT).await {
            Some(Received::Text(text)) => {
                let event: Value = serde_json::from_str(&text).expect("JSON frame");
                if event.get("heartbeat").is_some() {
                    continue;
                }
                resume_from = event["seq"].as_i64().expect("seq");
                versions.push(event["token"]["version"].as_i64().expect("version"));
            }
            Some(Received::Close(Some(reason)))
                if u16::from(reason.code) == CLOSE_SLOW_CONSUMER && resumes < RESUMES_MAX =>
            {
                assert_eq!(
                    reason.description.unwrap_or_default(),
                    format!("slow consumer; resume with since={resume_from}")
                );
                resumes += 1;
                feed = FeedClient::connect(&env, &events_path(&scene.bank.apikey, Some(resume_from))).await;
            }
            other => panic!("expected the rest of the events, got {other:?}"),
        }
    }
    assert_eq!(versions, (1..=last_version).collect::<Vec<_>>(), "every version exactly once");
}

async fn slow_consumers_dropped(env: &TestEnv) -> u64 {
    let metrics = env.api.get_anonymous("/metrics").await;
    metrics
        .text
        .lines()
        .find(|line| line.starts_with("cashgrid_websocket_slow_consumers_dropped_total{feed=\"events\"}"))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse::<f64>().ok())
        .map_or(0, |value| value as u64)
}

/// Issue 8, item 6: the event feed's snapshots name another customer's device nowhere the
/// original showed it: the token owner never sees the cash side's ATM (with fixed trigger
/// codes its uuid is a trigger code), the cash side never sees the owner's phone.
pub async fn event_feeds_show_each_party_only_its_own_devices(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let bank = env.scene("bank@example.com").await;
    let atm_operator = env.scene("atm-operator@example.com").await;
    let token = env.issue(&bank.bank, &bank.phone, 5_000).await;
    env.claim_ok(&atm_operator.cash, &atm_operator.atm, &token, &bank.phone).await;

    let locked_event = |mut feed: FeedClient| async move {
        loop {
            let event = feed.event().await;
            if event["event"] == "locked" {
                return event;
            }
        }
    };
    let owner_view = locked_event(FeedClient::connect(&env, &events_path(&bank.bank.apikey, Some(0))).await).await;
    let cash_view =
        locked_event(FeedClient::connect(&env, &events_path(&atm_operator.bank.apikey, Some(0))).await).await;
    for view in [&owner_view, &cash_view] {
        assert_eq!(view["uuid"], token["uuid"], "{view}");
        assert_eq!(view["token"]["state"], "LOCKED", "{view}");
    }
    let owner_text = owner_view.to_string();
    assert!(!owner_text.contains(&atm_operator.atm), "the owner sees no foreign ATM: {owner_text}");
    assert_eq!(owner_view["token"]["owner_device"], bank.phone.uuid.as_str(), "its own phone, as V-full's device_uuid");
    let cash_text = cash_view.to_string();
    assert!(!cash_text.contains(bank.phone.uuid.as_str()), "the cash side sees no foreign phone: {cash_text}");
    assert_eq!(cash_view["token"]["lock_device"], atm_operator.atm.as_str(), "its own ATM");
}
