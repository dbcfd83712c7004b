//! One actor per token: it owns the token's state and handles one command at a time, so claims
//! and confirms of a token are serialised without any database lock.
//!
//! A command is decided by the pure domain, written through the group-committing writer, and
//! answered only after the commit; the actor takes no other message meanwhile
//! (`AtomicResponse`). A fenced write (another node moved the token on) reloads and decides
//! again; a failed write restarts the actor under its supervisor, which reloads the snapshot.
//!
//! Another node may also have moved the token on without this actor writing anything: a
//! refusal that depends on the token's state (not OPEN, not LOCKED, locked by another device,
//! not found for this caller) is therefore checked against the stored version before it is
//! answered, and decided again on the newer snapshot if there is one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde_json::Value;
use uuid::Uuid;

use crate::clock::now_millis;
use crate::context::EntityContext;
use crate::domain::token::TokenRejection;
use crate::domain::token::{apply, ConfirmState, Token, TokenCommand, TokenState, TokenType, Transition};
use crate::handoff::Handoff;
use crate::metrics as m;
use crate::outcome::{rejection_reason, EngineError, Rejection};
use crate::registry::Registry;
use crate::store::{ClearingWrite, TokenWrite, WriteOutcome, WriteSet};
use crate::writer::WriteError;

/// Messages that may wait in one token's mailbox before senders are held back.
pub const MAILBOX_CAPACITY: usize = 256;
/// A token untouched this long leaves memory; its snapshot is in the store.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
const IDLE_CHECK_INTERVAL: Duration = Duration::from_secs(15);
/// An id with no token behind it keeps its actor only briefly.
const MISSING_TTL: Duration = Duration::from_secs(1);
/// A token in a final state changes rarely (an owner's update, a retention delete), so its
/// actor leaves memory this soon after its last request instead of after `IDLE_TIMEOUT`: the
/// actors in memory are then mostly the tokens in use (OPEN or LOCKED).
const FINAL_LINGER: Duration = Duration::from_secs(2);
/// Decide-and-write rounds after a version-fence conflict before giving up.
const FENCE_ATTEMPTS: usize = 3;
const KIND: &str = "token";

/// What a frontend asks of a token; the actor turns it into a domain command.
#[derive(Debug, Clone)]
pub enum TokenRequest {
    Claim {
        cash_device: Uuid,
        cash_customer: i64,
        code: Vec<u8>,
    },
    /// A claim through a trigger code; the engine verified the phone's signature.
    TriggerClaim {
        cash_device: Uuid,
        cash_customer: i64,
        code: Vec<u8>,
        signature_valid: bool,
    },
    Confirm {
        cash_device: Uuid,
        cash_customer: i64,
        state: Option<ConfirmState>,
        amount: Option<i64>,
        lockrefname: Option<String>,
        processing_info: Option<Value>,
        partial_cashouts: bool,
    },
    Update {
        caller: i64,
        clearstate: Option<i64>,
        info: Option<Value>,
    },
    Delete {
        caller: i64,
        device: Uuid,
    },
    /// Active expiry: an OPEN token past `expires` becomes EXPIRED (`NotOpen` otherwise).
    Expire,
}

impl TokenRequest {
    fn name(&self) -> &'static str {
        match self {
            Self::Claim { .. } => "claim",
            Self::TriggerClaim { .. } => "trigger_claim",
            Self::Confirm { .. } => "confirm",
            Self::Update { .. } => "update",
            Self::Delete { .. } => "delete",
            Self::Expire => "expire",
        }
    }
}

/// A request in the mailbox, with the moment it was sent and when its sender stops waiting.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub request: TokenRequest,
    pub sent_at: Instant,
    pub deadline: Instant,
    /// Taken when the actor starts on the request; a sender that gave up has abandoned it.
    pub handoff: Arc<Handoff>,
}

impl Message for Envelope {
    /// The token as committed after the request.
    type Result = Result<Token, EngineError>;
}

// One slot per actor and never in a collection: boxing the token would only add a hop.
#[allow(clippy::large_enum_variant)]
enum Slot {
    Loading,
    Ready(Token),
    Missing,
    Unavailable,
}

pub struct TokenActor {
    id: Uuid,
    shared: Arc<EntityContext>,
    /// Its own kind's registry, to leave it when passivating.
    registry: Arc<Registry<TokenActor>>,
    slot: Slot,
    last_active: Instant,
}

impl TokenActor {
    pub fn new(id: Uuid, shared: Arc<EntityContext>, registry: Arc<Registry<TokenActor>>) -> Self {
        Self { id, shared, registry, slot: Slot::Loading, last_active: Instant::now() }
    }

    /// An actor for a token whose snapshot was just committed, so it need not read it back.
    pub fn with_snapshot(token: Token, shared: Arc<EntityContext>, registry: Arc<Registry<TokenActor>>) -> Self {
        Self { id: token.uuid, shared, registry, slot: Slot::Ready(token), last_active: Instant::now() }
    }

    fn passivate(&mut self, ctx: &mut Context<Self>) {
        self.registry.remove(self.id, &ctx.address());
        ctx.stop();
    }

    fn load(&mut self, ctx: &mut Context<Self>) {
        self.slot = Slot::Loading;
        let store = Arc::clone(&self.shared.store);
        let id = self.id;
        ctx.wait(async move { store.load_token(id).await }.into_actor(self).map(|loaded, actor, ctx| {
            actor.slot = match loaded {
                Ok(Some(token)) => Slot::Ready(token),
                Ok(None) => {
                    ctx.run_later(MISSING_TTL, |actor, ctx| actor.passivate(ctx));
                    Slot::Missing
                }
                Err(error) => {
                    tracing::warn!(token = %actor.id, %error, "token snapshot could not be loaded");
                    ctx.run_later(MISSING_TTL, |actor, ctx| actor.passivate(ctx));
                    Slot::Unavailable
                }
            };
        }));
    }
}

impl Actor for TokenActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        m::actor_started(KIND);
        // A restart (see `restarting`) or a first activation loads; a seeded actor is ready.
        if matches!(self.slot, Slot::Loading) {
            self.load(ctx);
        }
        ctx.run_interval(IDLE_CHECK_INTERVAL, |actor, ctx| {
            if actor.last_active.elapsed() >= IDLE_TIMEOUT {
                actor.passivate(ctx);
            }
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        m::actor_stopped(KIND);
    }
}

impl Supervised for TokenActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        // `started` runs again and reloads: the store, not memory, is the truth after a fault.
        m::actor_restarted(KIND);
        self.slot = Slot::Loading;
    }
}

/// What the actor does with its state once a request is settled.
#[allow(clippy::large_enum_variant)]
enum After {
    Keep(Token),
    Missing,
    /// The outcome of a write is unknown: restart and reload from the store.
    Reload,
}

impl Handler<Envelope> for TokenActor {
    type Result = AtomicResponse<Self, Result<Token, EngineError>>;

    fn handle(&mut self, envelope: Envelope, _: &mut Self::Context) -> Self::Result {
        self.last_active = Instant::now();
        m::record_mailbox_wait(KIND, envelope.sent_at.elapsed());
        let immediate = |answer| AtomicResponse::new(Box::pin(fut::ready(answer)));
        if Instant::now() >= envelope.deadline || envelope.handoff.is_abandoned() {
            // The sender has given up; deciding now would change state behind its back.
            m::record_overload(KIND);
            return immediate(Err(EngineError::Overloaded));
        }
        if !envelope.handoff.take() {
            // Sent again after an actor that took it stopped: that one may have decided it.
            return immediate(Err(EngineError::OutcomeUnknown));
        }
        let token = match &self.slot {
            Slot::Ready(token) => Some(token.clone()),
            // Another node may have created it since: look again.
            Slot::Missing => None,
            Slot::Loading | Slot::Unavailable => return immediate(Err(EngineError::Unavailable)),
        };
        let shared = Arc::clone(&self.shared);
        let id = self.id;
        AtomicResponse::new(Box::pin(
            decide_and_commit(shared, id, token, envelope.request, envelope.deadline).into_actor(self).map(
                |(after, answer), actor, ctx| {
                    match after {
                        After::Keep(token) => {
                            if token.state.is_final() {
                                ctx.run_later(FINAL_LINGER, |actor, ctx| {
                                    if actor.last_active.elapsed() >= FINAL_LINGER {
                                        actor.passivate(ctx);
                                    }
                                });
                            }
                            actor.slot = Slot::Ready(token);
                        }
                        After::Missing => {
                            if !matches!(actor.slot, Slot::Missing) {
                                ctx.run_later(MISSING_TTL, |actor, ctx| actor.passivate(ctx));
                            }
                            actor.slot = Slot::Missing;
                        }
                        After::Reload => ctx.stop(),
                    }
                    answer
                },
            ),
        ))
    }
}

fn to_command(shared: &EntityContext, token: &Token, request: &TokenRequest) -> TokenCommand {
    match request {
        TokenRequest::Claim { cash_device, cash_customer, code } => TokenCommand::Claim {
            cash_device: *cash_device,
            cash_customer: *cash_customer,
            code_matches: token.code_hash.as_deref().is_some_and(|stored| shared.hasher.code_matches(code, stored)),
        },
        TokenRequest::TriggerClaim { cash_device, cash_customer, code, signature_valid } => {
            TokenCommand::TriggerClaim {
                cash_device: *cash_device,
                cash_customer: *cash_customer,
                signature_valid: *signature_valid,
                code_matches: token.code_hash.as_deref().is_some_and(|stored| shared.hasher.code_matches(code, stored)),
            }
        }
        TokenRequest::Confirm {
            cash_device,
            cash_customer,
            state,
            amount,
            lockrefname,
            processing_info,
            partial_cashouts,
        } => TokenCommand::Confirm {
            cash_device: *cash_device,
            cash_customer: *cash_customer,
            state: *state,
            amount: *amount,
            lockrefname: lockrefname.clone(),
            processing_info: processing_info.clone(),
            remainder: partial_cashouts.then(Uuid::new_v4),
        },
        TokenRequest::Update { caller, clearstate, info } => {
            TokenCommand::Update { caller: *caller, clearstate: *clearstate, info: info.clone() }
        }
        TokenRequest::Delete { caller, device } => TokenCommand::Delete { caller: *caller, device: *device },
        TokenRequest::Expire => TokenCommand::Expire,
    }
}

fn write_set(transition: &Transition) -> WriteSet {
    let mut writes = vec![TokenWrite::Update(transition.token.clone())];
    writes.extend(transition.spawned.clone().map(TokenWrite::Insert));
    let clearing = transition.clearing.map(|clearing| ClearingWrite {
        token: transition.token.uuid,
        debitor_id: clearing.debitor,
        creditor_id: clearing.creditor,
        created: clearing.at,
    });
    WriteSet { writes, events: transition.events.clone(), clearing, idempotency: None }
}

/// Whether a refusal of a command on `token` could be wrong because another node changed the
/// token since this actor read it. Only OPEN and LOCKED tokens move on (a final state is
/// final), and only refusals that look at the state, the lock or the owner's rights can go
/// stale; a refusal of the request's own values cannot.
fn may_be_stale(token: &Token, rejection: TokenRejection) -> bool {
    let depends_on_state = match rejection {
        TokenRejection::NotFound
        | TokenRejection::NotOpen
        | TokenRejection::NotLocked
        | TokenRejection::LockedByAnotherDevice
        | TokenRejection::IllegalAmountIncrease => true,
        TokenRejection::InvalidCode
        | TokenRejection::InvalidSignature
        | TokenRejection::InvalidConfirmState
        | TokenRejection::AmountOutOfRange
        | TokenRejection::ExpiresOutOfRange
        | TokenRejection::NothingToUpdate => false,
    };
    depends_on_state && !token.state.is_final()
}

async fn decide_and_commit(
    shared: Arc<EntityContext>,
    id: Uuid,
    known: Option<Token>,
    request: TokenRequest,
    deadline: Instant,
) -> (After, Result<Token, EngineError>) {
    let mut token = match known {
        Some(token) => token,
        None => match shared.store.load_token(id).await {
            Ok(Some(token)) => token,
            Ok(None) => return (After::Missing, Err(Rejection::UnknownToken.into())),
            Err(error) => {
                tracing::warn!(token = %id, %error, "token snapshot could not be loaded");
                return (After::Missing, Err(EngineError::Unavailable));
            }
        },
    };
    for _ in 0..FENCE_ATTEMPTS {
        let command = to_command(&shared, &token, &request);
        let transition = match apply(&token, &command, now_millis()) {
            Ok(transition) => transition,
            Err(rejection) if may_be_stale(&token, rejection) => {
                // Answer only what the stored version says: reload, and decide again if it moved.
                match shared.store.load_token(token.uuid).await {
                    Ok(Some(current)) if current.version != token.version => {
                        tracing::info!(token = %token.uuid, request = request.name(), "stale snapshot: deciding again");
                        token = current;
                        continue;
                    }
                    Ok(Some(_)) => {
                        m::record_rejection(rejection_reason(&Rejection::Token(rejection)));
                        return (After::Keep(token), Err(EngineError::Rejected(Rejection::Token(rejection))));
                    }
                    Ok(None) => return (After::Missing, Err(Rejection::UnknownToken.into())),
                    Err(error) => {
                        tracing::warn!(token = %token.uuid, %error, "could not check a refusal against the store");
                        return (After::Keep(token), Err(EngineError::Unavailable));
                    }
                }
            }
            Err(rejection) => {
                m::record_rejection(rejection_reason(&Rejection::Token(rejection)));
                return (After::Keep(token), Err(EngineError::Rejected(Rejection::Token(rejection))));
            }
        };
        match shared.writer.commit(write_set(&transition), deadline).await {
            Ok(WriteOutcome::Committed) => {
                for event in &transition.events {
                    // Owner updates keep the state: events, but no state transition.
                    if event.from != Some(event.to) {
                        m::record_transition(event.from.map_or("NONE", |state| state.as_str()), event.to.as_str());
                    }
                }
                let confirmed = &transition.token;
                if confirmed.state == TokenState::Completed && confirmed.token_type == TokenType::Cashout {
                    m::record_cashout(&shared.currencies, &confirmed.symbol, confirmed.amount);
                }
                if transition.clearing.is_some() {
                    m::record_clearing(confirmed.token_type.as_str());
                }
                let answer = match transition.answer {
                    Ok(()) => Ok(transition.token.clone()),
                    Err(rejection) => {
                        m::record_rejection(rejection_reason(&Rejection::Token(rejection)));
                        Err(EngineError::Rejected(Rejection::Token(rejection)))
                    }
                };
                return (After::Keep(transition.token), answer);
            }
            Ok(WriteOutcome::Conflict) => {
                m::record_fence_conflict();
                tracing::info!(token = %token.uuid, request = request.name(), "version fence: reloading");
                match shared.store.load_token(token.uuid).await {
                    Ok(Some(current)) => token = current,
                    Ok(None) => return (After::Missing, Err(Rejection::UnknownToken.into())),
                    Err(error) => {
                        tracing::warn!(token = %token.uuid, %error, "reload after fence failed");
                        return (After::Reload, Err(EngineError::Unavailable));
                    }
                }
            }
            Ok(WriteOutcome::Refused) | Err(WriteError::Failed) => {
                return (After::Reload, Err(EngineError::Internal("token write failed".into())));
            }
            Err(WriteError::Overloaded) => {
                m::record_overload("writer");
                return (After::Keep(token), Err(EngineError::Overloaded));
            }
            Err(WriteError::Unavailable) => return (After::Reload, Err(EngineError::Unavailable)),
            Err(WriteError::OutcomeUnknown) => return (After::Reload, Err(EngineError::OutcomeUnknown)),
        }
    }
    (After::Reload, Err(EngineError::Internal("version fence kept failing".into())))
}
