//! Trigger codes: a cash device without a scanner gets a one-shot code the phone claims onto it.
//!
//! The ATM creates a trigger (`create`) and long-polls it (`wait`) or listens
//! on its device socket (`socket`); the phone reads the code and sends it with its
//! radiocode and a signature (`claim`). The codes live in the `TriggerRegistry` actor;
//! the claim itself is the token actor's, exactly as a Cash API claim, with the signature
//! checked first.

use std::sync::Arc;
use std::time::Duration;

use actix::{Addr, MailboxError};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::access::AccessService;
use super::devices::DeviceService;
use super::tokens::TokenService;
use super::{EngineError, Rejection};
use crate::domain::params::{self, is_on};
use crate::domain::{CustomerId, Token};
use crate::metrics as m;
use crate::token_actor::TokenChange;
use crate::trigger_actor::{
    Complete, Create, Handover, PollAnswer, Release, Reserve, Subscribe, TriggerConfig, TriggerOwner, TriggerPush,
    TriggerRefusal, TriggerRegistry, Unsubscribe, Wait, WaitOutcome, EXPIRES_IN_MAX,
};

pub use crate::trigger_actor::{
    Handover as TriggerHandover, PollAnswer as TriggerAnswer, WaitOutcome as TriggerWait,
    EXPIRES_IN_DEFAULT as TRIGGER_EXPIRES_IN_DEFAULT,
};

/// Extra time the engine gives the registry to answer a poll before it answers it itself.
const WAIT_GRACE: Duration = Duration::from_secs(2);
/// Longest the phone's request waits for the ATM's poll to be handed its answer before it
/// answers anyway (the lock is committed either way; this only keeps the original's order).
pub const HANDOVER_WAIT: Duration = Duration::from_secs(1);

/// Why a trigger operation was refused, beyond the engine's usual answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TriggerError {
    /// No such trigger code: never created, expired, used up, or being used right now.
    UnknownTrigger,
    /// The phone sent no signature. The original failed with a TypeError here and left the
    /// token OPEN; cashgrid answers a clear error and leaves the token OPEN too.
    MissingSignature,
    Engine(EngineError),
}

impl From<EngineError> for TriggerError {
    fn from(error: EngineError) -> Self {
        Self::Engine(error)
    }
}

impl From<Rejection> for TriggerError {
    fn from(rejection: Rejection) -> Self {
        Self::Engine(rejection.into())
    }
}

/// Trigger codes are uuids; they are compared case-insensitively.
fn normalise(code: &str) -> String {
    code.trim().to_ascii_lowercase()
}

fn mailbox_error(error: MailboxError) -> EngineError {
    match error {
        MailboxError::Timeout => {
            m::record_overload("trigger");
            EngineError::Overloaded
        }
        MailboxError::Closed => EngineError::Unavailable,
    }
}

fn refusal(refusal: TriggerRefusal) -> TriggerError {
    match refusal {
        TriggerRefusal::NotFound => {
            m::record_rejection("unknown_trigger");
            TriggerError::UnknownTrigger
        }
        TriggerRefusal::Full => {
            m::record_overload("trigger");
            TriggerError::Engine(EngineError::Overloaded)
        }
    }
}

/// A trigger taken for one claim; released on drop unless the claim locked a token.
struct Reservation {
    registry: Addr<TriggerRegistry>,
    code: String,
    done: bool,
}

impl Reservation {
    /// Use the trigger up and hand `token` to its poll and sockets; resolves once the poll's
    /// answer has been handed to the ATM's connection (or nobody polls, or `HANDOVER_WAIT`).
    /// `do_send`, not `send`: the completion must reach the registry even when its mailbox is
    /// full, or the trigger would stay usable; one completion per reservation bounds it.
    async fn complete(mut self, owner: TriggerOwner, token: Token) {
        self.done = true;
        let (handover, handed_over) = Handover::new();
        self.registry.do_send(Complete { code: self.code.clone(), owner, token, handover });
        // Ok or Err alike: either the answer was handed over, or it never will be.
        let _ = tokio::time::timeout(HANDOVER_WAIT, handed_over).await;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.done {
            self.registry.do_send(Release { code: self.code.clone() });
        }
    }
}

/// A cash device's trigger socket subscription: locked tokens as they happen. Dropping it
/// unsubscribes.
pub struct TriggerFeed {
    registry: Addr<TriggerRegistry>,
    cash_device: Uuid,
    id: u64,
    pushes: mpsc::Receiver<TriggerPush>,
}

impl TriggerFeed {
    /// The next push; `None` once the registry dropped this socket (too slow, or shut down).
    pub async fn next(&mut self) -> Option<TriggerPush> {
        self.pushes.recv().await
    }
}

impl Drop for TriggerFeed {
    fn drop(&mut self) {
        self.registry.do_send(Unsubscribe { cash_device: self.cash_device, id: self.id });
    }
}

/// Trigger codes, their long polls and device sockets (one actor on its own arbiter), and the
/// claims through them.
#[derive(Clone)]
pub struct TriggerService {
    registry: Addr<TriggerRegistry>,
    config: Arc<TriggerConfig>,
    tokens: TokenService,
    devices: DeviceService,
    access: AccessService,
    send_timeout: Duration,
}

impl TriggerService {
    pub(super) fn new(
        registry: Addr<TriggerRegistry>,
        config: TriggerConfig,
        tokens: TokenService,
        devices: DeviceService,
        access: AccessService,
        send_timeout: Duration,
    ) -> Self {
        Self { registry, config: Arc::new(config), tokens, devices, access, send_timeout }
    }

    /// A trigger code for one of the customer's cash devices, valid for `expires_in` (at most
    /// `EXPIRES_IN_MAX`): a fresh uuid, or the device's uuid when fixed codes are on (server
    /// setting, or the customer's `USE_FIXED_TRIGGER_CODES`).
    pub async fn create(
        &self,
        cash_customer: CustomerId,
        cash_device: Uuid,
        expires_in: Duration,
    ) -> Result<String, EngineError> {
        self.devices.owned(cash_customer, cash_device).await?;
        let fixed = self.config.fixed_codes
            || is_on(self.access.param(cash_customer, params::USE_FIXED_TRIGGER_CODES).await?.as_ref());
        let code = if fixed { cash_device } else { Uuid::new_v4() }.to_string();
        let create = Create {
            code: code.clone(),
            owner: TriggerOwner { cash_device, cash_customer },
            expires_in: expires_in.min(EXPIRES_IN_MAX),
        };
        match self.registry.send(create).timeout(self.send_timeout).await {
            Ok(Ok(())) => Ok(code),
            Ok(Err(refused)) => match refusal(refused) {
                TriggerError::Engine(error) => Err(error),
                TriggerError::UnknownTrigger | TriggerError::MissingSignature => Err(EngineError::Overloaded),
            },
            Err(error) => Err(mailbox_error(error)),
        }
    }

    /// Wait until a phone uses the trigger, it expires, a newer poll takes over, or the
    /// configured bound passes. Only the cash customer whose device created the trigger may
    /// wait; for anyone else the trigger is unknown (the original checked no owner).
    ///
    /// A `Locked` answer carries a handover: keep it until the answer has been handed to the
    /// ATM's connection, then drop it; the phone's request is answered after that.
    pub async fn wait(&self, cash_customer: CustomerId, code: &str) -> Result<PollAnswer, TriggerError> {
        let wait = Wait { code: normalise(code), customer: cash_customer };
        let receiver = match self.registry.send(wait).timeout(self.send_timeout).await {
            Ok(Ok(receiver)) => receiver,
            Ok(Err(refused)) => return Err(refusal(refused)),
            Err(error) => return Err(mailbox_error(error).into()),
        };
        let limit = self.config.wait_max + WAIT_GRACE;
        Ok(match tokio::time::timeout(limit, receiver).await {
            Ok(Ok(answer)) => answer,
            // The registry let go of the poll without an answer (it restarted): the trigger is gone.
            Ok(Err(_)) => PollAnswer { outcome: WaitOutcome::Expired, handover: None },
            Err(_) => PollAnswer { outcome: WaitOutcome::TimedOut, handover: None },
        })
    }

    /// The Mobile API trigger: lock the token the radiocode names onto the trigger's cash
    /// device, if the phone's signature over `code + radiocode` verifies with the token
    /// device's key. Checks run in the original's order: trigger, radiocode, token,
    /// signature (a bad one rejects the token), code, state. The trigger is used up only when
    /// the token is locked; any failure leaves it valid.
    ///
    /// The claim runs as a task of its own: if the phone's request goes away midway, a token
    /// that gets locked still reaches the ATM's poll and sockets, and the trigger is used up.
    pub async fn claim(&self, code: &str, radiocode: &str, signature: Option<&str>) -> Result<Token, TriggerError> {
        let service = self.clone();
        let (code, radiocode, signature) = (code.to_owned(), radiocode.to_owned(), signature.map(str::to_owned));
        let task =
            actix::spawn(async move { service.claim_through_trigger(&code, &radiocode, signature.as_deref()).await });
        task.await.unwrap_or_else(|error| {
            tracing::error!(%error, "trigger claim task failed");
            Err(EngineError::Internal("trigger claim task failed".into()).into())
        })
    }

    async fn claim_through_trigger(
        &self,
        code: &str,
        radiocode: &str,
        signature: Option<&str>,
    ) -> Result<Token, TriggerError> {
        let normalised = normalise(code);
        let owner = match self.registry.send(Reserve { code: normalised.clone() }).timeout(self.send_timeout).await {
            Ok(Ok(owner)) => owner,
            Ok(Err(refused)) => return Err(refusal(refused)),
            Err(error) => return Err(mailbox_error(error).into()),
        };
        let reservation = Reservation { registry: self.registry.clone(), code: normalised, done: false };
        let (token_id, presented) = self.tokens.named_by(radiocode).await?;
        // The token's device never changes, so its committed row names the key to verify with.
        let Some(token) = self.tokens.load(token_id).await? else {
            return Err(Rejection::UnknownToken.into());
        };
        let Some(signature) = signature else {
            m::record_rejection("missing_signature");
            return Err(TriggerError::MissingSignature);
        };
        let Some(device) = self.devices.get(token.owner_device).await? else {
            tracing::error!(token = %token.uuid, device = %token.owner_device, "token device missing");
            return Err(EngineError::Internal("token device missing".into()).into());
        };
        let key = device.key.as_ref().map_err(|error| Rejection::BadPublicKey(error.clone()))?;
        let message = format!("{code}{radiocode}");
        let request = TokenChange::TriggerClaim {
            cash_device: owner.cash_device,
            cash_customer: owner.cash_customer,
            code: presented,
            signature_valid: crate::crypto::phone_signature_valid(key, message.as_bytes(), signature),
        };
        let locked = self.tokens.change(token_id, request).await?;
        reservation.complete(owner, locked.clone()).await;
        Ok(locked)
    }

    /// Subscribe a device socket of `cash_customer`'s cash device to its triggers' locks.
    pub async fn socket(&self, cash_customer: CustomerId, cash_device: Uuid) -> Result<TriggerFeed, EngineError> {
        self.devices.owned(cash_customer, cash_device).await?;
        match self.registry.send(Subscribe { cash_device }).timeout(self.send_timeout).await {
            Ok(Ok(subscription)) => Ok(TriggerFeed {
                registry: self.registry.clone(),
                cash_device,
                id: subscription.id,
                pushes: subscription.pushes,
            }),
            Ok(Err(_)) => {
                m::record_overload("trigger");
                Err(EngineError::Overloaded)
            }
            Err(error) => Err(mailbox_error(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_codes_compare_case_insensitively() {
        assert_eq!(normalise(" ABC-def "), "abc-def");
    }
}
