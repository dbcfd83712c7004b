//! Every error answer of the HTTP frontends, in the dncash-io wire formats. Handlers build an
//! `ApiError`; this module alone turns it into a status and a body. Server faults are opaque.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use cashgrid_actors::EngineError;
use serde::Serialize;
use utoipa::ToSchema;

use crate::ErrorStatus;

/// Seconds a client should wait before retrying after a 503.
const RETRY_AFTER_SECONDS: &str = "1";
/// The 504 body's message: what happened, and how to find out what became of the request.
pub const OUTCOME_UNKNOWN: &str = "Gateway Timeout: the outcome of this request is unknown. \
    It may or may not have taken effect: read the token (or device) to find out, or repeat the \
    request with the same Idempotency-Key header to get its original result.";
const IDEMPOTENCY_KEY_REUSED: &str = "This Idempotency-Key was already used with another request.";
const IDEMPOTENCY_KEY_IN_FLIGHT: &str =
    "A request with this Idempotency-Key is still in progress; retry after a moment.";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// A refused request in the global format `{"error":{},"message":M}`.
    #[error("{message}")]
    Business { status: StatusCode, message: String },
    /// Cash API claim failures: 403 `{"error":M}`.
    #[error("claim refused: {0}")]
    Claim(String),
    /// Token API single-object lookups: 404 with a bare JSON string.
    #[error("{0}")]
    NotFound(&'static str),
    #[error("invalid API credentials")]
    Credentials,
    #[error("request entity too large")]
    TooLarge,
    /// 408: the body did not arrive within the body deadline; the connection is closed.
    #[error("request body timeout")]
    BodyTimeout,
    #[error("overloaded")]
    Overloaded,
    #[error("store unavailable")]
    Unavailable,
    /// 504: the change was handed to the store and its outcome did not come back in time.
    #[error("outcome unknown")]
    OutcomeUnknown,
    /// 409: the `Idempotency-Key` came with another request before, or (`in_flight`) its first
    /// request is still being decided (with `Retry-After`).
    #[error("idempotency key conflict")]
    IdempotencyKey { in_flight: bool },
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// The 409 of an idempotency key's refusal.
    pub fn idempotency_key(in_flight: bool) -> Self {
        Self::IdempotencyKey { in_flight }
    }

    /// A business error the original answers with 500; `client_status` under `4xx` mode.
    pub fn business(mode: ErrorStatus, client_status: StatusCode, message: impl Into<String>) -> Self {
        let status = match mode {
            ErrorStatus::Original => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorStatus::ClientErrors => client_status,
        };
        Self::Business { status, message: message.into() }
    }

    /// A client mistake the original too answers with a 4xx (malformed JSON, bad key).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::Business { status: StatusCode::BAD_REQUEST, message: message.into() }
    }

    /// Engine faults; rejections must be mapped by the caller, which knows the protocol step.
    pub fn from_fault(error: EngineError) -> Self {
        match error {
            EngineError::Overloaded => Self::Overloaded,
            EngineError::Unavailable => Self::Unavailable,
            EngineError::OutcomeUnknown => Self::OutcomeUnknown,
            EngineError::Internal(_) => Self::Internal,
            EngineError::Rejected(rejection) => {
                tracing::error!(?rejection, "rejection reached the generic fault mapping");
                Self::Internal
            }
        }
    }
}

/// The global error format `{"error":{},"message":M}`: business errors, MySQL-worded input
/// errors, JWT failures, bad JSON bodies, 413, 503 and opaque 500s.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"error": {}, "message": "Not Found: /dnapi/token/v1/nothing"}))]
pub struct GlobalError {
    /// Always an empty object (the original's serialised `Error`).
    pub error: EmptyObject,
    pub message: String,
}

/// `{}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmptyObject {}

/// Cash API claim refusals and credential failures: `{"error":M}`, no `message`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"error": "Invalid API access key or secret"}))]
pub struct TextError {
    pub error: String,
}

impl GlobalError {
    fn new(message: impl Into<String>) -> Self {
        Self { error: EmptyObject {}, message: message.into() }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Business { status, .. } => *status,
            Self::Claim(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Credentials => StatusCode::UNAUTHORIZED,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Overloaded | Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::OutcomeUnknown => StatusCode::GATEWAY_TIMEOUT,
            Self::IdempotencyKey { .. } => StatusCode::CONFLICT,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let mut response = HttpResponse::build(status);
        let response = response.content_type(crate::JSON_CONTENT_TYPE);
        match self {
            Self::Business { message, .. } => response.json(GlobalError::new(message.as_str())),
            Self::Claim(message) => response.json(TextError { error: message.clone() }),
            // Token API lookups answer a bare JSON string.
            Self::NotFound(text) => response.json(text),
            Self::Credentials => response.json(TextError { error: "Invalid API access key or secret".to_owned() }),
            Self::TooLarge => response.json(GlobalError::new("request entity too large")),
            // The rest of the body may never come: end the connection with the answer.
            Self::BodyTimeout => response
                .insert_header((header::CONNECTION, HeaderValue::from_static("close")))
                .json(GlobalError::new("request body timeout")),
            Self::Overloaded | Self::Unavailable => response
                .insert_header((header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS)))
                .json(GlobalError::new("Service Unavailable")),
            Self::OutcomeUnknown => response.json(GlobalError::new(OUTCOME_UNKNOWN)),
            Self::IdempotencyKey { in_flight: false } => response.json(GlobalError::new(IDEMPOTENCY_KEY_REUSED)),
            Self::IdempotencyKey { in_flight: true } => response
                .insert_header((header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS)))
                .json(GlobalError::new(IDEMPOTENCY_KEY_IN_FLIGHT)),
            Self::Internal => response.json(GlobalError::new("Internal Server Error")),
        }
    }
}
