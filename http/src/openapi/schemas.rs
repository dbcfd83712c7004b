//! Schemas the derives cannot see: the domain's enumerations (their wire names come from the
//! domain's own lists, so a new state or type shows up here by itself) and the fault answers
//! every operation of a group shares.

use std::collections::BTreeMap;

use cashgrid_actors::domain::token::{TokenState, TokenType, EXPIRES_MAX, EXPIRES_MIN};
use cashgrid_actors::domain::DeviceType;
use cashgrid_actors::store::Scope;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::{ContentBuilder, RefOr, Response, ResponseBuilder};
use utoipa::{IntoParams, IntoResponses, PartialSchema, ToSchema};

use crate::error::{GlobalError, TextError};

/// A string schema with exactly these values.
pub(crate) fn names(values: impl IntoIterator<Item = &'static str>, description: &str) -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some(values)).description(Some(description)).into()
}

/// Every device type: spelled out, with a match that stops compiling when the domain adds one.
const DEVICE_TYPES: [DeviceType; 4] =
    [DeviceType::Mobile, DeviceType::Atm, DeviceType::CashRegister, DeviceType::Other];

fn _every_device_type_is_listed(device_type: DeviceType) {
    match device_type {
        DeviceType::Mobile | DeviceType::Atm | DeviceType::CashRegister | DeviceType::Other => {}
    }
}

/// Every API scope, with the same guard.
const SCOPES: [Scope; 5] =
    [Scope::TokenApi, Scope::CashApi, Scope::ClearingApi, Scope::LedgerApi, Scope::LedgerOperator];

fn _every_scope_is_listed(scope: Scope) {
    match scope {
        Scope::TokenApi | Scope::CashApi | Scope::ClearingApi | Scope::LedgerApi | Scope::LedgerOperator => {}
    }
}

/// A token's state on the wire (`OPEN`, `LOCKED`, ...).
pub struct TokenStateName;

impl PartialSchema for TokenStateName {
    fn schema() -> RefOr<Schema> {
        names(TokenState::ALL.map(TokenState::as_str), "A token's state.")
    }
}

impl ToSchema for TokenStateName {}

/// A token's type on the wire (`CASHOUT`, `CASHIN`, ...).
pub struct TokenTypeName;

impl PartialSchema for TokenTypeName {
    fn schema() -> RefOr<Schema> {
        names(TokenType::ALL.map(TokenType::as_str), "A token's type.")
    }
}

impl ToSchema for TokenTypeName {}

/// A device's type on the wire (`MOBILE`, `ATM`, ...).
pub struct DeviceTypeName;

impl PartialSchema for DeviceTypeName {
    fn schema() -> RefOr<Schema> {
        names(DEVICE_TYPES.map(DeviceType::as_str), "A device's type.")
    }
}

impl ToSchema for DeviceTypeName {}

/// An API credential's scope on the wire (`token-api`, ...).
pub struct ScopeName;

impl PartialSchema for ScopeName {
    fn schema() -> RefOr<Schema> {
        names(SCOPES.map(Scope::as_str), "What a pair of API credentials may call.")
    }
}

impl ToSchema for ScopeName {}

/// A token's `expires` in a request: epoch milliseconds (a number, or a numeric string), or an
/// RFC 3339 date-time, as the original's `new Date(x)` read it.
pub struct ExpiresValue;

impl PartialSchema for ExpiresValue {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                    .minimum(Some(EXPIRES_MIN as f64))
                    .maximum(Some(EXPIRES_MAX as f64)),
            )
            .item(ObjectBuilder::new().schema_type(Type::String).format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))))
            .description(Some(
                "Epoch milliseconds, or an RFC 3339 date-time; from 1970-01-01T00:00:00.000Z to 9999-12-31T23:59:59.999Z.",
            ))
            .into()
    }
}

impl ToSchema for ExpiresValue {}

/// The file names of the published documents (`dncash.json`, ...).
pub struct DocumentFile;

impl PartialSchema for DocumentFile {
    fn schema() -> RefOr<Schema> {
        names(super::DOCUMENTS.map(|(_, path)| path.trim_start_matches("/openapi/")), "A published document.")
    }
}

impl ToSchema for DocumentFile {}

fn json_response(description: &str, body: RefOr<Schema>) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", ContentBuilder::new().schema(Some(body)).build())
        .into()
}

pub(super) fn global_error(description: &str) -> RefOr<Response> {
    json_response(description, RefOr::Ref(utoipa::openapi::Ref::from_schema_name(GlobalError::name())))
}

const SERVER_FAULT: &str = "An opaque server fault (`Internal Server Error`). In the default error mode \
     (`--error-status original`) every business error documented here as 400, 403, 404 or 409 is a 500 \
     with the same body, as in the original.";
const UNAVAILABLE: &str = "The store is unreachable or the engine is saturated (`Service Unavailable`, \
     with `Retry-After`).";

/// What may befall any request: a server fault or an overload.
fn faults() -> BTreeMap<String, RefOr<Response>> {
    BTreeMap::from([("500".to_owned(), global_error(SERVER_FAULT)), ("503".to_owned(), global_error(UNAVAILABLE))])
}

/// Token, Cash and Clearing API requests: bad credentials, and the faults.
pub struct ApiKeyFaults;

impl IntoResponses for ApiKeyFaults {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut responses = faults();
        responses.insert(
            "401".to_owned(),
            json_response(
                "`DN-API-KEY`/`DN-API-SECRET` missing, wrong, or of another scope.",
                RefOr::Ref(utoipa::openapi::Ref::from_schema_name(TextError::name())),
            ),
        );
        responses
    }
}

/// Admin API requests behind a session: express-jwt's 401s, and the faults.
pub struct SessionFaults;

impl IntoResponses for SessionFaults {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut responses = faults();
        responses.insert(
            "401".to_owned(),
            global_error(
                "No, a malformed, an expired or a wrongly signed JWT (`No authorization token was found`, \
                 `Format is Authorization: Bearer [token]`, `jwt expired`, `invalid signature`, ...).",
            ),
        );
        responses
    }
}

/// Requests without credentials: only the faults.
pub struct Faults;

impl IntoResponses for Faults {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        faults()
    }
}

/// Requests with a JSON body: a body over 100 kB.
pub struct BodyFaults;

impl IntoResponses for BodyFaults {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        BTreeMap::from([(
            "413".to_owned(),
            global_error("The body is larger than 100 kB (`request entity too large`)."),
        )])
    }
}

/// The optional `Idempotency-Key` header of the creates (tokens and devices).
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // Describes the header in the documents; the handlers read it themselves.
pub struct IdempotencyKeyHeader {
    /// A client-chosen key (1 to 255 visible ASCII characters) that makes a retry answer the
    /// original result instead of creating again; scoped to the customer, kept at least 24 hours.
    #[param(rename = "Idempotency-Key", min_length = 1, max_length = 255, pattern = "^[!-~]+$")]
    idempotency_key: Option<String>,
}

/// The 409 of a create with an `Idempotency-Key`.
pub struct IdempotencyFaults;

impl IntoResponses for IdempotencyFaults {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        BTreeMap::from([(
            "409".to_owned(),
            global_error(
                "The `Idempotency-Key` came with another request before (`This Idempotency-Key was already used \
                 with another request.`), or its first request is still in progress (with `Retry-After`).",
            ),
        )])
    }
}
