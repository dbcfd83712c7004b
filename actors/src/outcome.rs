//! How the engine answers when it does not succeed: business rejections and faults. Below the
//! engine facade, so that actors, the expiry sweeper and the frontends share them without
//! depending on the facade.

use crate::crypto::KeyError;
use crate::domain::token::TokenRejection;
use crate::metrics as m;
use crate::store::StoreError;

/// Business answers: the request was understood and refused. Each frontend maps every variant
/// to its protocol's status and body in one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    Token(TokenRejection),
    /// The device is unknown or belongs to another customer.
    UnknownDevice,
    /// No token behind the uuid (or plain code) given.
    UnknownToken,
    /// An empty radiocode.
    IllegalRadiocode,
    /// The registered public key cannot be used (carries the reason).
    BadPublicKey(KeyError),
    /// Required token fields missing or invalid; the original's catch-all for a failed insert.
    TokenNotCreated,
    /// The `Idempotency-Key` was used before with another request (409).
    IdempotencyKeyReused,
    /// A request with the same `Idempotency-Key` is still being decided (409, retry).
    IdempotencyKeyInFlight,
    /// More requests in one batch than it may hold.
    BatchTooLarge,
}

/// Stable, low-cardinality metric label of a rejection.
pub fn rejection_reason(rejection: &Rejection) -> &'static str {
    match rejection {
        Rejection::Token(token) => match token {
            TokenRejection::NotFound => "token_not_found",
            TokenRejection::NotOpen => "not_open",
            TokenRejection::NotLocked => "not_locked",
            TokenRejection::InvalidCode => "invalid_code",
            TokenRejection::InvalidSignature => "invalid_signature",
            TokenRejection::LockedByAnotherDevice => "locked_by_another_device",
            TokenRejection::InvalidConfirmState => "invalid_confirm_state",
            TokenRejection::IllegalAmountIncrease => "illegal_amount_increase",
            TokenRejection::AmountOutOfRange => "amount_out_of_range",
            TokenRejection::ExpiresOutOfRange => "expires_out_of_range",
            TokenRejection::NothingToUpdate => "nothing_to_update",
        },
        Rejection::UnknownDevice => "unknown_device",
        Rejection::UnknownToken => "unknown_token",
        Rejection::IllegalRadiocode => "illegal_radiocode",
        Rejection::BadPublicKey(_) => "bad_public_key",
        Rejection::TokenNotCreated => "token_not_created",
        Rejection::IdempotencyKeyReused => "idempotency_key_reused",
        Rejection::IdempotencyKeyInFlight => "idempotency_key_in_flight",
        Rejection::BatchTooLarge => "batch_too_large",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("rejected: {0:?}")]
    Rejected(Rejection),
    /// Bounded queues are full or an actor did not answer in time: retry later (503).
    #[error("overloaded")]
    Overloaded,
    /// The store cannot be reached (503). Nothing changed.
    #[error("store unavailable")]
    Unavailable,
    /// A change was handed to the store but its outcome did not come back in time: it may or
    /// may not have taken effect (504). The client reads the entity, or retries with the same
    /// `Idempotency-Key`, to find out.
    #[error("outcome unknown")]
    OutcomeUnknown,
    /// A fault of ours; the cause is logged where it happened (opaque 500).
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for EngineError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(_) => Self::Unavailable,
            StoreError::OutcomeUnknown(reason) => {
                tracing::error!(%reason, "store outcome unknown");
                Self::OutcomeUnknown
            }
            StoreError::Duplicate(what) => Self::Internal(format!("unexpected duplicate {what}")),
            StoreError::Referenced(what) => Self::Internal(format!("unexpected reference from {what}")),
            StoreError::Internal(error) => {
                tracing::error!(error = %format!("{error:#}"), "store error");
                Self::Internal(error.to_string())
            }
        }
    }
}

impl From<Rejection> for EngineError {
    fn from(rejection: Rejection) -> Self {
        m::record_rejection(rejection_reason(&rejection));
        Self::Rejected(rejection)
    }
}
