//! The operator's side of the Crypto Capital API over HTTP, with a `ledger-operator`
//! credential (the Ledger API's `DN-API-KEY`/`DN-API-SECRET` headers and error format): book a
//! bank deposit, verify a user (KYC: an IBAN of its own), settle a payout to an IBAN. The
//! server's signing address is public. The CLI does the same (`cashgrid ccc …`).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use cashgrid_actors::crypto::bitcoin_message::Address;
use cashgrid_actors::domain::ccc::{parse_iban, UserRejection};
use cashgrid_actors::domain::ledger::{parse_major, Currencies, Currency, MajorAmountError, TransferId};
use cashgrid_actors::engine::ccc::{Deposit, Moved, ProfileAnswer};
use serde::{Deserialize, Serialize};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi, ToSchema};
use uuid::Uuid;

use super::views::{DepositView, SettledView, VerifiedView};
use crate::ledger::error::{ChangeFaults, ErrorBody};
use crate::ledger::{body, caller, resource, LedgerError};
use crate::AppState;

/// The operator API's paths, under the WebSocket's.
pub const PREFIX: &str = "/ccc/v1/operator";
/// Longest bank reference and failure message.
const TEXT_MAX: usize = 500;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "cashgrid Crypto Capital operator API",
        description = "The operator's side of the Crypto Capital WebSocket API (`ws://…/ccc/v1`): \
            bank deposits, KYC, the bank's answers on payouts. Credentials: a `ledger-operator` \
            credential's `DN-API-KEY` and `DN-API-SECRET`. Errors answer \
            `{\"error\":{\"code\":…,\"message\":…}}`."
    ),
    paths(deposit, verify, settle, server_address),
    components(schemas(DepositBody, SettleBody, DepositView, VerifiedView, SettledView, ServerAddress)),
    tags((name = "Operator", description = "Deposits, KYC and payouts of the Crypto Capital API's users."))
)]
struct OperatorDocument;

/// The document published at `/openapi/ccc.json`.
pub fn document() -> Document {
    let mut document = OperatorDocument::openapi();
    SecuritySchemes.modify(&mut document);
    document
}

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, document: &mut Document) {
        crate::openapi::add_key_pair(
            document,
            (crate::ledger::API_KEY, crate::ledger::API_SECRET),
            "The API key of a `ledger-operator` credential \
             (`cashgrid access create --customer E --scope ledger-operator`).",
        );
    }
}

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(resource(&format!("{PREFIX}/deposits")).route(web::post().to(deposit)))
        .service(resource(&format!("{PREFIX}/users/{{address}}/verify")).route(web::post().to(verify)))
        .service(resource(&format!("{PREFIX}/payouts/{{txid}}/settle")).route(web::post().to(settle)))
        .service(resource("/ccc/v1/server-address").route(web::get().to(server_address)));
}

/// 401 without a ledger credential, 403 with a customer's.
async fn operator(state: &AppState, request: &HttpRequest) -> Result<(), LedgerError> {
    if caller(state, request).await?.operator {
        Ok(())
    } else {
        Err(LedgerError::forbidden("Only a ledger-operator credential runs the Crypto Capital API's bank side."))
    }
}

fn address(text: &str) -> Result<Address, LedgerError> {
    Address::parse(text).map_err(|_| LedgerError::invalid(format!("'{text}' is not a Bitcoin P2PKH address.")))
}

/// `text` when it is 1 to [`TEXT_MAX`] characters without NUL (or absent).
fn within(text: &Option<String>) -> bool {
    match text {
        None => true,
        Some(text) => !text.is_empty() && text.chars().count() <= TEXT_MAX && !text.contains('\0'),
    }
}

fn text_within(text: Option<String>, name: &str) -> Result<Option<String>, LedgerError> {
    if within(&text) {
        Ok(text)
    } else {
        Err(LedgerError::invalid(format!("{name} must be 1 to {TEXT_MAX} characters.")))
    }
}

/// Why a deposit's fields do not make a deposit; the text names the field as the HTTP body does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DepositInputError {
    #[error("address '{0}' is not a Bitcoin P2PKH address")]
    Address(String),
    #[error("{0} is not a currency of this ledger")]
    UnknownCurrency(String),
    #[error("amount must be a decimal number such as 100.00")]
    Malformed,
    #[error("amount has more than {0} decimal places")]
    TooManyDecimals(u8),
    #[error("amount must be positive")]
    NotPositive,
    #[error("amount is too large")]
    TooLarge,
    #[error("from_iban is not a valid IBAN")]
    Iban,
    #[error("reference must be 1 to {TEXT_MAX} characters")]
    Reference,
}

/// A deposit from its fields as given (the HTTP body here, the CLI's flags in `cashgrid ccc
/// deposit`): the address, the IBAN and the reference checked, the amount read in the
/// currency's minor units.
pub fn read_deposit(
    currencies: &Currencies,
    address: String,
    currency: String,
    amount: &str,
    from_iban: &str,
    reference: Option<String>,
) -> Result<Deposit, DepositInputError> {
    if Address::parse(&address).is_err() {
        return Err(DepositInputError::Address(address));
    }
    let from_iban = parse_iban(from_iban).ok_or(DepositInputError::Iban)?;
    let decimals = Currency::new(&currency)
        .and_then(|code| currencies.decimals(&code))
        .ok_or_else(|| DepositInputError::UnknownCurrency(currency.clone()))?;
    let amount = parse_major(amount, decimals).map_err(|error| match error {
        MajorAmountError::Malformed => DepositInputError::Malformed,
        MajorAmountError::TooManyDecimals => DepositInputError::TooManyDecimals(decimals),
        MajorAmountError::NotPositive => DepositInputError::NotPositive,
        MajorAmountError::TooLarge => DepositInputError::TooLarge,
    })?;
    if !within(&reference) {
        return Err(DepositInputError::Reference);
    }
    Ok(Deposit { address, currency, amount, from_iban, reference })
}

/// A bank payment in to a user.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DepositBody {
    /// The user's Bitcoin address.
    #[schema(example = "1HZwkjkeaoZfTSaJxDw6aKkxp45agDiEzN")]
    address: String,
    /// An ISO 4217 code (or a configured currency).
    #[schema(example = "USD")]
    currency: String,
    /// Major units, as on the wire, with at most the currency's decimal places.
    #[schema(example = "100.00")]
    amount: String,
    /// The IBAN it came from.
    #[schema(example = "DE44500105175407324931")]
    from_iban: String,
    /// The bank's reference: a payment under a reference already booked credits nothing.
    #[schema(max_length = 500)]
    reference: Option<String>,
}

#[utoipa::path(
    post,
    path = "/ccc/v1/operator/deposits",
    tag = "Operator",
    request_body = DepositBody,
    security(("ledger_api_key" = [], "ledger_api_secret" = [])),
    responses(
        (status = 201, description = "Booked; the user's sockets are told at once.", body = DepositView),
        (status = 200, description = "Booked before under this reference: nothing credited.", body = DepositView),
        (status = 400, description = "Malformed body, address, IBAN, currency or amount.", body = ErrorBody),
        (status = 403, description = "Not an operator's credential.", body = ErrorBody),
        (status = 404, description = "No registered user has this address.", body = ErrorBody),
        (status = 422, description = "Refused (`refused`): another payment under this reference.", body = ErrorBody),
        ChangeFaults,
    )
)]
async fn deposit(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, LedgerError> {
    operator(&state, &request).await?;
    let DepositBody { address, currency, amount, from_iban, reference } = body(&request, payload).await?;
    let ccc = state.engine.ccc();
    let deposit = read_deposit(state.engine.ledger().currencies(), address, currency, &amount, &from_iban, reference)
        .map_err(|error| match error {
        DepositInputError::UnknownCurrency(code) => LedgerError::unknown_currency(&code),
        other => LedgerError::invalid(format!("{other}.")),
    })?;
    let (status, result, transfer) = match ccc.deposit(deposit).await.map_err(LedgerError::fault)? {
        Moved::Booked(transfer) => (StatusCode::CREATED, "booked", transfer),
        Moved::AlreadyBooked(transfer) => (StatusCode::OK, "already_booked", transfer),
        Moved::NotFound(message) => return Err(LedgerError::not_found_because(message)),
        Moved::Refused(message) => return Err(LedgerError::refused(message)),
    };
    let decimals = ccc.decimals(transfer.currency.code()).unwrap_or(0);
    Ok(HttpResponse::build(status).json(DepositView::of(result, &transfer, decimals)))
}

#[utoipa::path(
    post,
    path = "/ccc/v1/operator/users/{address}/verify",
    tag = "Operator",
    params(("address" = String, Path, description = "The user's Bitcoin address.")),
    security(("ledger_api_key" = [], "ledger_api_secret" = [])),
    responses(
        (status = 200, description = "Verified: the user has an IBAN of its own and may pay out.", body = VerifiedView),
        (status = 400, description = "Not a Bitcoin address.", body = ErrorBody),
        (status = 403, description = "Not an operator's credential.", body = ErrorBody),
        (status = 404, description = "No registered user has this address.", body = ErrorBody),
        (status = 409, description = "Verified already (`already_verified`).", body = ErrorBody),
        ChangeFaults,
    )
)]
async fn verify(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, LedgerError> {
    operator(&state, &request).await?;
    let address = address(&path)?;
    match state.engine.ccc().verify(address.as_str()).await.map_err(LedgerError::fault)? {
        ProfileAnswer::Done(user) => Ok(HttpResponse::Ok().json(VerifiedView::of(&user))),
        ProfileAnswer::NotRegistered => Err(LedgerError::not_found("registered user")),
        ProfileAnswer::Refused(UserRejection::AlreadyVerified) => {
            Err(LedgerError::conflict("already_verified", "The user is verified already."))
        }
        ProfileAnswer::Refused(rejection) => Err(LedgerError::refused(rejection.message())),
        ProfileAnswer::AlreadyRegistered => Err(LedgerError::refused("Already registered")),
    }
}

/// The bank's answer on a payout.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SettleBody {
    /// `complete` (paid: the hold is posted to the bank rail) or `failed` (the money goes back).
    #[schema(example = "complete")]
    outcome: Outcome,
    /// Why it failed, for the user [default: failed].
    #[schema(max_length = 500)]
    message: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    Complete,
    Failed,
}

#[utoipa::path(
    post,
    path = "/ccc/v1/operator/payouts/{txid}/settle",
    tag = "Operator",
    params(("txid" = Uuid, Path, description = "The payout's txid.")),
    request_body = SettleBody,
    security(("ledger_api_key" = [], "ledger_api_secret" = [])),
    responses(
        (status = 200, description = "Settled (or settled so before); the user's sockets are told.", body = SettledView),
        (status = 400, description = "Malformed body or txid.", body = ErrorBody),
        (status = 403, description = "Not an operator's credential.", body = ErrorBody),
        (status = 404, description = "No payout to an IBAN has this txid.", body = ErrorBody),
        (status = 409, description = "Settled otherwise, failed or timed out already (`settled_otherwise`).", body = ErrorBody),
        ChangeFaults,
    )
)]
async fn settle(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, LedgerError> {
    operator(&state, &request).await?;
    let txid =
        Uuid::parse_str(&path).map_err(|_| LedgerError::invalid(format!("'{}' is not a uuid.", path.as_str())))?;
    let SettleBody { outcome, message } = body(&request, payload).await?;
    let message = text_within(message, "message")?;
    let failure = match outcome {
        Outcome::Complete => None,
        Outcome::Failed => Some(message.unwrap_or_else(|| "failed".to_owned())),
    };
    let ccc = state.engine.ccc();
    let (result, step) = match ccc.settle(TransferId(txid), failure).await.map_err(LedgerError::fault)? {
        Moved::Booked(step) => ("settled", step),
        Moved::AlreadyBooked(step) => ("already_settled", step),
        Moved::NotFound(message) => return Err(LedgerError::not_found_because(message)),
        Moved::Refused(message) => return Err(LedgerError::conflict("settled_otherwise", message)),
    };
    let shown = ccc.user_transfer(&step, false).await.map_err(LedgerError::fault)?;
    Ok(HttpResponse::Ok().json(SettledView::of(result, &shown)))
}

/// The address whose key signs the server's messages.
#[derive(Serialize, ToSchema)]
struct ServerAddress {
    #[schema(example = "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH")]
    address: String,
}

#[utoipa::path(
    get,
    path = "/ccc/v1/server-address",
    tag = "Operator",
    responses(
        (status = 200, description = "The P2PKH address of the key that signs every ledger message (`signed`).", body = ServerAddress),
    )
)]
async fn server_address(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(ServerAddress { address: state.engine.ccc().server_address().to_string() })
}
