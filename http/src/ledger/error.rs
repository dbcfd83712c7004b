//! The Ledger API's error answers: `{"error":{"code":C,"message":M}}` with a status that says
//! whose mistake it was. Codes are stable; messages are for people.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use cashgrid_actors::EngineError;
use serde::Serialize;
use utoipa::openapi::{ContentBuilder, RefOr, Response, ResponseBuilder};
use utoipa::{IntoResponses, ToSchema};

use crate::error::ApiError;

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_SECONDS: &str = "1";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct LedgerError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl LedgerError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    /// A malformed request: nothing was done.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn unknown_currency(code: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unknown_currency", format!("{code} is not a currency of this ledger."))
    }

    pub fn unknown_customer(customer: i64) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unknown_customer", format!("There is no customer {customer}."))
    }

    pub fn credentials() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "DN-API-KEY and DN-API-SECRET of a ledger-api or ledger-operator credential are needed.",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("No such {what}."))
    }

    pub fn method_not_allowed() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "This path does not take this method.")
    }

    /// 404 with its own text.
    pub fn not_found_because(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409 with its own code: the request contradicts what was done before.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 422: well-formed, but the domain refuses it; nothing changed.
    pub fn refused(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "refused", message)
    }

    pub fn exists(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "exists_with_different_fields", message)
    }

    /// The fault code of an engine error, as a batch's result names it too.
    pub fn fault_code(error: &EngineError) -> &'static str {
        match error {
            EngineError::Overloaded => "overloaded",
            EngineError::Unavailable => "unavailable",
            EngineError::OutcomeUnknown => "outcome_unknown",
            EngineError::Internal(_) | EngineError::Rejected(_) => "internal_error",
        }
    }

    pub fn fault(error: EngineError) -> Self {
        let code = Self::fault_code(&error);
        match error {
            EngineError::Overloaded | EngineError::Unavailable => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, code, "Nothing was done; retry after a moment.")
            }
            EngineError::OutcomeUnknown => Self::new(
                StatusCode::GATEWAY_TIMEOUT,
                code,
                "The outcome is unknown: the change may or may not have taken effect. Send it again with the \
                 same id to find out (a transfer id answers `exists` once it was created).",
            ),
            EngineError::Internal(_) | EngineError::Rejected(_) => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, code, "Internal Server Error")
            }
        }
    }
}

/// What the shared body reader refuses, in this API's format.
impl From<ApiError> for LedgerError {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::TooLarge => Self::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "The body is too large."),
            ApiError::BodyTimeout => {
                Self::new(StatusCode::REQUEST_TIMEOUT, "body_timeout", "The body did not arrive in time.")
            }
            ApiError::Business { message, .. } => Self::invalid(message),
            ApiError::Overloaded => Self::fault(EngineError::Overloaded),
            ApiError::Unavailable => Self::fault(EngineError::Unavailable),
            ApiError::OutcomeUnknown => Self::fault(EngineError::OutcomeUnknown),
            ApiError::Credentials => Self::credentials(),
            other => {
                tracing::error!(?other, "unexpected error reading a ledger request");
                Self::fault(EngineError::Internal("request".into()))
            }
        }
    }
}

/// The error body.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = LedgerErrorBody, example = json!({"error": {"code": "not_found", "message": "No such account."}}))]
pub struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = LedgerErrorDetail)]
pub struct ErrorDetail<'a> {
    /// Stable: `invalid_request`, `invalid_credentials`, `forbidden`, `not_found`, `method_not_allowed`,
    /// `exists_with_different_fields`, `unknown_currency`, `unknown_customer`, `body_too_large`,
    /// `body_timeout`, `overloaded`, `unavailable`, `outcome_unknown`, `internal_error`; the
    /// Crypto Capital operator API adds `refused`, `already_verified`, `settled_otherwise`.
    pub code: &'a str,
    pub message: &'a str,
}

impl ResponseError for LedgerError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS)));
        }
        if self.status == StatusCode::REQUEST_TIMEOUT {
            response.insert_header((header::CONNECTION, HeaderValue::from_static("close")));
        }
        response.json(ErrorBody { error: ErrorDetail { code: self.code, message: &self.message } })
    }
}

fn error_response(description: &str) -> RefOr<Response> {
    let schema = RefOr::Ref(utoipa::openapi::Ref::from_schema_name("LedgerErrorBody"));
    ResponseBuilder::new()
        .description(description)
        .content("application/json", ContentBuilder::new().schema(Some(schema)).build())
        .into()
}

const CREDENTIALS: &str = "No or wrong ledger credentials (`invalid_credentials`).";
const SERVER_FAULT: &str = "A server fault (`internal_error`).";
const UNAVAILABLE: &str = "Overloaded or the store is unreachable; nothing was done (`Retry-After`).";

/// What may befall any request of the API: bad credentials and the faults.
pub struct ReadFaults;

impl IntoResponses for ReadFaults {
    fn responses() -> std::collections::BTreeMap<String, RefOr<Response>> {
        [("401", CREDENTIALS), ("500", SERVER_FAULT), ("503", UNAVAILABLE)]
            .into_iter()
            .map(|(status, description)| (status.to_owned(), error_response(description)))
            .collect()
    }
}

/// What may befall a request with a body that changes something: the reads' answers, a body
/// too large or too slow, and an outcome that did not come back.
pub struct ChangeFaults;

impl IntoResponses for ChangeFaults {
    fn responses() -> std::collections::BTreeMap<String, RefOr<Response>> {
        let mut responses = ReadFaults::responses();
        for (status, description) in [
            ("408", "The body did not arrive in time (`body_timeout`)."),
            ("413", "The body is larger than 2 MiB (`body_too_large`)."),
            (
                "504",
                "The outcome is unknown (`outcome_unknown`): send the request again with the same ids to find out.",
            ),
        ] {
            responses.insert(status.to_owned(), error_response(description));
        }
        responses
    }
}
