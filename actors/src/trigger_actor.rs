//! Trigger codes (spec §10): one-shot codes that bind a phone's claim to a cash device without
//! a scanner, the long polls waiting for them, and the device sockets that get the same news.
//!
//! One `TriggerRegistry` actor holds them all. A trigger is a few dozen bytes that lives a
//! minute, is touched three or four times, and needs no storage (the original kept them in
//! memory too), so one actor per code would cost more in activation and passivation than the
//! code itself; a single actor also makes the global bounds (`TRIGGERS_MAX`, `POLLS_MAX`,
//! `SOCKETS_MAX`) exact and the single-use rule trivial. Every operation is an O(1) map
//! update without I/O, so the one mailbox is not a bottleneck at ATM rates.
//!
//! Triggers live in this process only: the ATM's poll and the phone's trigger must reach the
//! same node (the original needed Redis for that; see ARCHITECTURE.md).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::domain::{CustomerId, Token};
use crate::metrics as m;
use crate::mqtt::MqttPublisher;

/// Trigger codes held at once; creating more answers `Full` (503).
pub const TRIGGERS_MAX: usize = 100_000;
/// Long polls (`GET /trigger/:code`) waiting at once.
pub const POLLS_MAX: usize = 10_000;
/// Device sockets open at once, in total and per cash device.
pub const SOCKETS_MAX: usize = 10_000;
pub const SOCKETS_PER_DEVICE_MAX: usize = 4;
/// Pushes queued for one device socket; a socket that falls this far behind is closed.
pub const SOCKET_BUFFER: usize = 16;
/// Messages that may wait in the registry's mailbox.
pub const MAILBOX_CAPACITY: usize = 4_096;
/// How often expired triggers, ended polls and closed sockets are swept out.
const SWEEP_INTERVAL: Duration = Duration::from_millis(250);
/// Longest trigger validity a cash device may ask for.
pub const EXPIRES_IN_MAX: Duration = Duration::from_secs(24 * 60 * 60);
/// Validity when the cash device does not say (the original's constant).
pub const EXPIRES_IN_DEFAULT: Duration = Duration::from_secs(60);
/// Longest a long poll is held before it is answered "nothing yet" (the original had no
/// limit, so a poll could hang forever).
pub const WAIT_MAX_DEFAULT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
pub struct TriggerConfig {
    /// Longest a long poll waits; then it is answered `TimedOut` and may poll again.
    pub wait_max: Duration,
    /// Every trigger code is its cash device's uuid, whatever the customer's parameter says.
    pub fixed_codes: bool,
}

impl Default for TriggerConfig {
    fn default() -> Self {
        Self { wait_max: WAIT_MAX_DEFAULT, fixed_codes: false }
    }
}

/// Why the registry refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerRefusal {
    /// No such trigger, or it expired, or it is being used right now.
    NotFound,
    /// A bound is reached: retry later.
    Full,
}

/// How a long poll ends. Every poll gets exactly one of these.
#[derive(Debug, Clone, PartialEq)]
pub enum WaitOutcome {
    /// A phone's trigger locked this token onto the trigger's cash device.
    Locked(Box<Token>),
    /// The trigger expired unused.
    Expired,
    /// A newer poll of the same code took over (the original silently dropped this one).
    Replaced,
    /// Nothing happened within `wait_max`; the trigger is still valid.
    TimedOut,
}

impl WaitOutcome {
    fn label(&self) -> &'static str {
        match self {
            Self::Locked(_) => "locked",
            Self::Expired => "expired",
            Self::Replaced => "replaced",
            Self::TimedOut => "timeout",
        }
    }
}

/// What a long poll receives: its outcome and, with a locked token, the handover that the
/// phone's request waits for.
#[derive(Debug)]
pub struct PollAnswer {
    pub outcome: WaitOutcome,
    pub handover: Option<Handover>,
}

/// Held by the ATM's answer until it has been handed to the ATM's connection; dropping it
/// tells the phone's request (which holds the receiving end) that it may answer now. The
/// original answered the ATM's poll before the phone's 204, and ATM software relies on it.
#[derive(Debug)]
pub struct Handover {
    _released_on_drop: oneshot::Sender<()>,
}

impl Handover {
    /// A handover and the receiver that wakes when it is dropped.
    pub fn new() -> (Self, oneshot::Receiver<()>) {
        let (sender, receiver) = oneshot::channel();
        (Self { _released_on_drop: sender }, receiver)
    }
}

/// What a device socket receives: the trigger code and the token it locked.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerPush {
    pub code: String,
    pub token: Token,
}

/// The cash side a trigger belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TriggerOwner {
    pub cash_device: Uuid,
    pub cash_customer: CustomerId,
}

struct Trigger {
    owner: TriggerOwner,
    expires: Instant,
    /// A phone's claim through this trigger is in flight; nobody else may use it meanwhile.
    reserved: bool,
}

struct Poll {
    reply: oneshot::Sender<PollAnswer>,
    deadline: Instant,
    /// The cash customer that polls: always the trigger's own (`Wait` checks it).
    customer: CustomerId,
}

struct Socket {
    id: u64,
    sender: mpsc::Sender<TriggerPush>,
}

pub struct TriggerRegistry {
    triggers: HashMap<String, Trigger>,
    polls: HashMap<String, Poll>,
    sockets: HashMap<Uuid, Vec<Socket>>,
    socket_count: usize,
    next_socket: u64,
    wait_max: Duration,
    /// Where locked tokens are also published, when MQTT is configured.
    mqtt: Option<MqttPublisher>,
}

impl TriggerRegistry {
    pub fn new(config: &TriggerConfig, mqtt: Option<MqttPublisher>) -> Self {
        Self {
            triggers: HashMap::new(),
            polls: HashMap::new(),
            sockets: HashMap::new(),
            socket_count: 0,
            next_socket: 0,
            wait_max: config.wait_max,
            mqtt,
        }
    }

    /// The trigger behind `code` if it is still valid at `now`.
    fn live(&self, code: &str, now: Instant) -> Option<&Trigger> {
        self.triggers.get(code).filter(|trigger| trigger.reserved || trigger.expires > now)
    }

    fn answer_poll(&mut self, code: &str, outcome: WaitOutcome, handover: Option<Handover>) {
        if let Some(poll) = self.polls.remove(code) {
            m::record_trigger_wait_answer(outcome.label());
            // The poller may have given up (client gone); the handover is dropped with the
            // answer then, so nobody waits for it.
            let _ = poll.reply.send(PollAnswer { outcome, handover });
        }
    }

    /// Drop expired triggers (answering their polls), polls past their deadline or abandoned,
    /// and closed sockets.
    fn sweep(&mut self, now: Instant) {
        let expired: Vec<String> = self
            .triggers
            .iter()
            .filter(|(_, trigger)| !trigger.reserved && trigger.expires <= now)
            .map(|(code, _)| code.clone())
            .collect();
        for code in expired {
            self.triggers.remove(&code);
            m::record_trigger_end("expired");
            self.answer_poll(&code, WaitOutcome::Expired, None);
        }
        let mut abandoned = Vec::new();
        let mut ended = Vec::new();
        for (code, poll) in &self.polls {
            if poll.reply.is_closed() {
                abandoned.push(code.clone());
            } else if !self.triggers.contains_key(code) {
                ended.push((code.clone(), WaitOutcome::Expired));
            } else if poll.deadline <= now {
                ended.push((code.clone(), WaitOutcome::TimedOut));
            }
        }
        // Abandoned by their clients: forget them without an answer.
        for code in abandoned {
            self.polls.remove(&code);
        }
        for (code, outcome) in ended {
            self.answer_poll(&code, outcome, None);
        }
        self.sockets.retain(|_, sockets| {
            sockets.retain(|socket| !socket.sender.is_closed());
            !sockets.is_empty()
        });
        self.socket_count = self.sockets.values().map(Vec::len).sum();
        self.publish_gauges();
    }

    fn publish_gauges(&self) {
        m::set_trigger_gauges(self.triggers.len(), self.polls.len(), self.socket_count);
    }

    /// Push to every socket of the device; a socket whose buffer is full is dropped (its
    /// session sees the channel close and ends the connection).
    fn push(&mut self, device: Uuid, push: &TriggerPush) {
        let Some(sockets) = self.sockets.get_mut(&device) else {
            return;
        };
        sockets.retain(|socket| match socket.sender.try_send(push.clone()) {
            Ok(()) => {
                m::record_trigger_push("sent");
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                m::record_trigger_push("dropped");
                tracing::warn!(%device, socket = socket.id, "trigger socket too slow: closing it");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        if sockets.is_empty() {
            self.sockets.remove(&device);
        }
        self.socket_count = self.sockets.values().map(Vec::len).sum();
    }
}

impl Actor for TriggerRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        ctx.run_interval(SWEEP_INTERVAL, |registry, _| registry.sweep(Instant::now()));
    }
}

impl Supervised for TriggerRegistry {}

/// Register (or, for a fixed code, renew) a trigger.
pub struct Create {
    pub code: String,
    pub owner: TriggerOwner,
    pub expires_in: Duration,
}

impl Message for Create {
    type Result = Result<(), TriggerRefusal>;
}

impl Handler<Create> for TriggerRegistry {
    type Result = Result<(), TriggerRefusal>;

    fn handle(&mut self, create: Create, _: &mut Self::Context) -> Self::Result {
        let now = Instant::now();
        let expires = now + create.expires_in;
        if let Some(existing) = self.triggers.get_mut(&create.code) {
            // A fixed code created again: same device, fresh validity; a poll already
            // waiting for it keeps waiting, and a claim in flight keeps its reservation.
            // (Codes are the creator's own device uuids or fresh uuids, so another customer
            // cannot name an existing code; should a device ever change hands, the old
            // owner's poll is answered "gone" rather than handed to the new one.)
            let new_customer = existing.owner.cash_customer != create.owner.cash_customer;
            existing.owner = create.owner;
            existing.expires = expires;
            if new_customer {
                self.answer_poll(&create.code, WaitOutcome::Expired, None);
            }
            m::record_trigger_end("replaced");
            m::record_trigger_created();
            return Ok(());
        }
        if self.triggers.len() >= TRIGGERS_MAX {
            self.sweep(now);
            if self.triggers.len() >= TRIGGERS_MAX {
                return Err(TriggerRefusal::Full);
            }
        }
        self.triggers.insert(create.code, Trigger { owner: create.owner, expires, reserved: false });
        m::record_trigger_created();
        self.publish_gauges();
        Ok(())
    }
}

/// Wait for a trigger to be used: the receiver gets exactly one outcome. Only the cash
/// customer whose device created the trigger may wait for it; for anyone else it does not
/// exist (the original let anyone poll any code, and fixed codes are device uuids that other
/// customers see, so a foreign poll could take over and receive the locked token).
pub struct Wait {
    pub code: String,
    pub customer: CustomerId,
}

impl Message for Wait {
    type Result = Result<oneshot::Receiver<PollAnswer>, TriggerRefusal>;
}

impl Handler<Wait> for TriggerRegistry {
    type Result = Result<oneshot::Receiver<PollAnswer>, TriggerRefusal>;

    fn handle(&mut self, wait: Wait, _: &mut Self::Context) -> Self::Result {
        let now = Instant::now();
        match self.live(&wait.code, now) {
            Some(trigger) if trigger.owner.cash_customer == wait.customer => {}
            Some(_) | None => return Err(TriggerRefusal::NotFound),
        }
        // A second poll replaces the first, as in the original; the first gets an answer.
        self.answer_poll(&wait.code, WaitOutcome::Replaced, None);
        if self.polls.len() >= POLLS_MAX {
            self.sweep(now);
            if self.polls.len() >= POLLS_MAX {
                return Err(TriggerRefusal::Full);
            }
        }
        let (reply, receiver) = oneshot::channel();
        self.polls.insert(wait.code, Poll { reply, deadline: now + self.wait_max, customer: wait.customer });
        self.publish_gauges();
        Ok(receiver)
    }
}

/// Take a trigger for one phone's claim: until `Release` or `Complete`, nobody else may.
pub struct Reserve {
    pub code: String,
}

impl Message for Reserve {
    type Result = Result<TriggerOwner, TriggerRefusal>;
}

impl Handler<Reserve> for TriggerRegistry {
    type Result = Result<TriggerOwner, TriggerRefusal>;

    fn handle(&mut self, reserve: Reserve, _: &mut Self::Context) -> Self::Result {
        let now = Instant::now();
        match self.triggers.get_mut(&reserve.code) {
            Some(trigger) if !trigger.reserved && trigger.expires > now => {
                trigger.reserved = true;
                Ok(trigger.owner)
            }
            Some(_) | None => Err(TriggerRefusal::NotFound),
        }
    }
}

/// The claim through a reserved trigger failed: the trigger is usable again (if still valid).
pub struct Release {
    pub code: String,
}

impl Message for Release {
    type Result = ();
}

impl Handler<Release> for TriggerRegistry {
    type Result = ();

    fn handle(&mut self, release: Release, _: &mut Self::Context) {
        if let Some(trigger) = self.triggers.get_mut(&release.code) {
            trigger.reserved = false;
        }
    }
}

/// The claim through a reserved trigger locked `token`: the trigger is used up, its poll gets
/// the token, and so does every socket of the trigger's cash device. `owner` is the one
/// `Reserve` answered. `handover` goes to the poll with the token (and is dropped at once if
/// nobody polls), so the phone's request can wait until the ATM has its answer.
pub struct Complete {
    pub code: String,
    pub owner: TriggerOwner,
    pub token: Token,
    pub handover: Handover,
}

impl Message for Complete {
    type Result = ();
}

impl Handler<Complete> for TriggerRegistry {
    type Result = ();

    fn handle(&mut self, complete: Complete, _: &mut Self::Context) {
        if self.triggers.remove(&complete.code).is_some() {
            m::record_trigger_end("used");
        }
        let push = TriggerPush { code: complete.code, token: complete.token };
        self.push(complete.owner.cash_device, &push);
        // The lock is committed (Complete follows the token actor's answer); best effort.
        if let Some(mqtt) = &self.mqtt {
            mqtt.offer(&push);
        }
        // Only the trigger owner's poll may hear of the token (`Wait` admits no other).
        if self.polls.get(&push.code).is_some_and(|poll| poll.customer == complete.owner.cash_customer) {
            let outcome = WaitOutcome::Locked(Box::new(push.token.clone()));
            self.answer_poll(&push.code, outcome, Some(complete.handover));
        }
        self.publish_gauges();
    }
}

/// Open a device socket's subscription: every trigger of `cash_device` that locks a token is
/// pushed to the receiver (at most `SOCKET_BUFFER` queued).
pub struct Subscribe {
    pub cash_device: Uuid,
}

/// A device socket's subscription; `Unsubscribe` with its id ends it.
#[derive(Debug)]
pub struct Subscription {
    pub id: u64,
    pub pushes: mpsc::Receiver<TriggerPush>,
}

impl Message for Subscribe {
    type Result = Result<Subscription, TriggerRefusal>;
}

impl Handler<Subscribe> for TriggerRegistry {
    type Result = Result<Subscription, TriggerRefusal>;

    fn handle(&mut self, subscribe: Subscribe, _: &mut Self::Context) -> Self::Result {
        let per_device = self.sockets.get(&subscribe.cash_device).map_or(0, Vec::len);
        if self.socket_count >= SOCKETS_MAX || per_device >= SOCKETS_PER_DEVICE_MAX {
            self.sweep(Instant::now());
            let per_device = self.sockets.get(&subscribe.cash_device).map_or(0, Vec::len);
            if self.socket_count >= SOCKETS_MAX || per_device >= SOCKETS_PER_DEVICE_MAX {
                return Err(TriggerRefusal::Full);
            }
        }
        let (sender, pushes) = mpsc::channel(SOCKET_BUFFER);
        self.next_socket += 1;
        let id = self.next_socket;
        self.sockets.entry(subscribe.cash_device).or_default().push(Socket { id, sender });
        self.socket_count += 1;
        self.publish_gauges();
        Ok(Subscription { id, pushes })
    }
}

pub struct Unsubscribe {
    pub cash_device: Uuid,
    pub id: u64,
}

impl Message for Unsubscribe {
    type Result = ();
}

impl Handler<Unsubscribe> for TriggerRegistry {
    type Result = ();

    fn handle(&mut self, unsubscribe: Unsubscribe, _: &mut Self::Context) {
        if let Some(sockets) = self.sockets.get_mut(&unsubscribe.cash_device) {
            sockets.retain(|socket| socket.id != unsubscribe.id);
            if sockets.is_empty() {
                self.sockets.remove(&unsubscribe.cash_device);
            }
        }
        self.socket_count = self.sockets.values().map(Vec::len).sum();
        self.publish_gauges();
    }
}

#[cfg(test)]
#[path = "trigger_actor_tests.rs"]
mod tests;
