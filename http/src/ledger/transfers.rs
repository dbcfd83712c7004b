//! Transfers: one at a time, or batches of linked chains; read one by id.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use cashgrid_actors::domain::ledger::{
    AccountId, Amount, Memo, Submitted, TransferId, TransferRequest, TransferResult,
};
use cashgrid_actors::engine::ledger::{Answer, TransferOutcome, BATCH_MAX};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use super::error::{ChangeFaults, ErrorBody, ReadFaults};
use super::views::TransferView;
use super::{body, caller, resource, LedgerError};
use crate::AppState;

#[derive(OpenApi)]
#[openapi(paths(create, batch, get), components(schemas(TransferView, TransferResultName)))]
pub(super) struct Document;

pub(super) fn configure(config: &mut web::ServiceConfig) {
    config
        .service(resource("/transfers").route(web::post().to(create)))
        .service(resource("/transfers/batch").route(web::post().to(batch)))
        .service(resource("/transfers/{id}").route(web::get().to(get)));
}

/// Longest reference, in characters.
const REFERENCE_MAX: usize = 255;
/// Largest metadata, as JSON text.
const METADATA_MAX_BYTES: usize = 2_048;

/// What a transfer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum KindBody {
    /// Move the amount now.
    Post,
    /// Reserve the amount until it is posted, voided, or `timeout_ms` passes.
    Hold,
    /// Post a hold (`pending_id`): all of it, or `amount` of it.
    PostPending,
    /// Release a hold (`pending_id`).
    VoidPending,
}

/// A transfer as a client asks it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TransferBody {
    /// Chosen by the client, so that a retry names the same transfer (it answers `exists`);
    /// generated when absent.
    id: Option<Uuid>,
    /// [default: `post`]
    kind: Option<KindBody>,
    /// `post` and `hold`: the account debited.
    debit_account_id: Option<Uuid>,
    /// `post` and `hold`: the account credited.
    credit_account_id: Option<Uuid>,
    /// Minor units, 1 to 2^63 - 1: needed for `post` and `hold`; for `post_pending` at most the
    /// hold's (all of it when absent).
    #[schema(minimum = 1, maximum = 9_223_372_036_854_775_807_u64)]
    amount: Option<u64>,
    /// `post_pending` and `void_pending`: the hold.
    pending_id: Option<Uuid>,
    /// `hold`: milliseconds until the hold is released unless posted or voided.
    timeout_ms: Option<i64>,
    /// The client's code for what kind of payment this is [default: 0].
    code: Option<u16>,
    #[schema(max_length = 255)]
    reference: Option<String>,
    /// Any JSON object of up to 2 KiB; stored and answered, never read.
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
    /// Batches only: joins it with the next transfer; a chain applies whole or not at all.
    linked: Option<bool>,
}

fn field_error(index: Option<usize>, message: impl std::fmt::Display) -> LedgerError {
    match index {
        Some(index) => LedgerError::invalid(format!("transfers[{index}]: {message}")),
        None => LedgerError::invalid(message.to_string()),
    }
}

fn request_of(body: TransferBody, index: Option<usize>) -> Result<Submitted, LedgerError> {
    let invalid = |message: &str| field_error(index, message);
    let id = TransferId(body.id.unwrap_or_else(Uuid::new_v4));
    let kind = body.kind.unwrap_or(KindBody::Post);
    let amount = match body.amount {
        None => None,
        Some(minor) => Some(Amount::new(minor).ok_or_else(|| invalid("amount must be from 1 to 2^63 - 1."))?),
    };
    if body.reference.as_ref().is_some_and(|text| text.chars().count() > REFERENCE_MAX) {
        return Err(invalid("reference has more than 255 characters."));
    }
    match &body.metadata {
        None | Some(Value::Object(_)) => {}
        Some(_) => return Err(invalid("metadata must be a JSON object.")),
    }
    if body.metadata.as_ref().is_some_and(|value| value.to_string().len() > METADATA_MAX_BYTES) {
        return Err(invalid("metadata is larger than 2 KiB."));
    }
    let resolves = matches!(kind, KindBody::PostPending | KindBody::VoidPending);
    if resolves {
        if body.debit_account_id.is_some() || body.credit_account_id.is_some() {
            return Err(invalid("a hold's accounts are the hold's: give pending_id only."));
        }
        if body.code.is_some() || body.reference.is_some() || body.metadata.is_some() {
            return Err(invalid("a hold's code, reference and metadata are the hold's."));
        }
        if body.timeout_ms.is_some() {
            return Err(invalid("timeout_ms is for holds."));
        }
    } else if body.pending_id.is_some() {
        return Err(invalid("pending_id is for post_pending and void_pending."));
    }
    let memo = Memo { code: body.code.unwrap_or(0), reference: body.reference, metadata: body.metadata };
    let accounts = || match (body.debit_account_id, body.credit_account_id, amount) {
        (Some(debit), Some(credit), Some(amount)) => Ok((AccountId(debit), AccountId(credit), amount)),
        _ => Err(invalid("debit_account_id, credit_account_id and amount are needed.")),
    };
    let pending = || body.pending_id.map(TransferId).ok_or_else(|| invalid("pending_id is needed."));
    let request = match kind {
        KindBody::Post => {
            if body.timeout_ms.is_some() {
                return Err(invalid("timeout_ms is for holds."));
            }
            let (debit, credit, amount) = accounts()?;
            TransferRequest::Post { id, debit, credit, amount, memo }
        }
        KindBody::Hold => {
            let (debit, credit, amount) = accounts()?;
            let timeout_ms = body.timeout_ms.ok_or_else(|| invalid("timeout_ms is needed for a hold."))?;
            TransferRequest::Hold { id, debit, credit, amount, memo, timeout_ms }
        }
        KindBody::PostPending => TransferRequest::PostPending { id, pending: pending()?, amount },
        KindBody::VoidPending => {
            if amount.is_some() {
                return Err(invalid("a void releases the whole hold: give no amount."));
            }
            TransferRequest::VoidPending { id, pending: pending()?, reason: None }
        }
    };
    if index.is_none() && body.linked.is_some() {
        return Err(invalid("linked is for batches."));
    }
    Ok(Submitted { request, linked: body.linked.unwrap_or(false) })
}

/// A transfer's result code (`created`, `exists`, `exceeds_credits`, ...).
pub struct TransferResultName;

impl utoipa::PartialSchema for TransferResultName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "Stable result codes: `created`, `exists` (the same transfer again: nothing changed), \
                 `exists_with_different_fields`, `linked_event_failed`, `linked_event_chain_open`, \
                 `accounts_must_be_different`, `debit_account_not_found`, `credit_account_not_found`, \
                 `currency_mismatch`, `debit_account_frozen`, `credit_account_frozen`, `exceeds_credits` \
                 (insufficient funds), `exceeds_debits`, `timeout_must_be_positive`, `pending_transfer_not_found`, \
                 `pending_transfer_not_pending`, `pending_transfer_already_posted`, \
                 `pending_transfer_already_voided`, `pending_transfer_expired`, \
                 `exceeds_pending_transfer_amount`, `overflow`. In a batch also the faults that kept a \
                 chain from committing: `overloaded` and `unavailable` (nothing written), `outcome_unknown` \
                 (send it again with the same ids to find out), `internal_error`.",
            ))
            .into()
    }
}

impl ToSchema for TransferResultName {}

/// A transfer's answer.
#[derive(Serialize, ToSchema)]
struct TransferAnswer {
    #[schema(value_type = TransferResultName)]
    result: &'static str,
    /// The transfer as recorded (`created`, `exists`); null for a refusal.
    #[schema(required = true)]
    transfer: Option<TransferView>,
}

fn answer_of(outcome: &TransferOutcome) -> TransferAnswer {
    TransferAnswer { result: outcome.result.as_str(), transfer: outcome.transfer.as_ref().map(TransferView::of) }
}

/// Make one transfer.
#[utoipa::path(
    post,
    path = "/ledger/v1/transfers",
    tag = "Transfers",
    request_body = TransferBody,
    security(("ledger_api_key" = [], "ledger_api_secret" = [])),
    responses(
        (status = 201, description = "Created.", body = TransferAnswer),
        (status = 200, description = "`exists`: created before with the same fields; nothing changed.", body = TransferAnswer),
        (status = 409, description = "`exists_with_different_fields`: another transfer has this id.", body = TransferAnswer),
        (status = 422, description = "Refused (`result` says why); nothing changed.", body = TransferAnswer),
        (status = 400, description = "A malformed body.", body = ErrorBody),
        ChangeFaults,
    )
)]
async fn create(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, LedgerError> {
    let caller = caller(&state, &request).await?;
    let submitted = request_of(body::<TransferBody>(&request, payload).await?, None)?;
    let outcome =
        state.engine.ledger().transfer(submitted.request, caller.reach()).await.map_err(LedgerError::fault)?;
    let status = match outcome.result {
        TransferResult::Created => StatusCode::CREATED,
        TransferResult::Exists => StatusCode::OK,
        TransferResult::ExistsWithDifferentFields => StatusCode::CONFLICT,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    Ok(HttpResponse::build(status).json(answer_of(&outcome)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    /// 1 to 1,000 transfers, decided in order.
    #[schema(min_items = 1, max_items = 1000)]
    transfers: Vec<TransferBody>,
}

/// One transfer's result in a batch.
#[derive(Serialize, ToSchema)]
struct BatchResult {
    /// Its place in the batch.
    index: usize,
    #[schema(format = Uuid)]
    id: String,
    #[schema(value_type = TransferResultName)]
    result: &'static str,
    /// The transfer as recorded (`created`, `exists`); null otherwise.
    #[schema(required = true)]
    transfer: Option<TransferView>,
}

#[derive(Serialize, ToSchema)]
struct BatchAnswer {
    results: Vec<BatchResult>,
}

/// Make up to 1,000 transfers, decided in order, one result each. Transfers joined by `linked`
/// form a chain that applies whole or not at all; chains apply independently, and a later one
/// may build on an earlier one (post a hold it made, spend what it brought in).
#[utoipa::path(
    post,
    path = "/ledger/v1/transfers/batch",
    tag = "Transfers",
    request_body = BatchBody,
    security(("ledger_api_key" = [], "ledger_api_secret" = [])),
    responses(
        (status = 200, description = "A result per transfer, in order.", body = BatchAnswer),
        (status = 400, description = "A malformed body (nothing was done): the message names the transfer.", body = ErrorBody),
        ChangeFaults,
    )
)]
async fn batch(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, LedgerError> {
    let caller = caller(&state, &request).await?;
    let BatchBody { transfers } = body(&request, payload).await?;
    if transfers.is_empty() || transfers.len() > BATCH_MAX {
        return Err(LedgerError::invalid(format!("A batch has 1 to {BATCH_MAX} transfers.")));
    }
    let batch: Vec<Submitted> = transfers
        .into_iter()
        .enumerate()
        .map(|(index, body)| request_of(body, Some(index)))
        .collect::<Result<_, _>>()?;
    let ids: Vec<TransferId> = batch.iter().map(|submitted| submitted.request.id()).collect();
    let answers: Vec<Answer> = state.engine.ledger().submit(batch, caller.reach()).await.map_err(LedgerError::fault)?;
    let results = answers
        .iter()
        .zip(ids)
        .enumerate()
        .map(|(index, (answer, id))| match answer {
            Ok(outcome) => {
                let TransferAnswer { result, transfer } = answer_of(outcome);
                BatchResult { index, id: id.to_string(), result, transfer }
            }
            Err(error) => {
                BatchResult { index, id: id.to_string(), result: LedgerError::fault_code(error), transfer: None }
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(BatchAnswer { results }))
}

/// One transfer by id (a hold with its current state).
#[utoipa::path(
    get,
    path = "/ledger/v1/transfers/{id}",
    tag = "Transfers",
    params(("id" = Uuid, Path, description = "The transfer's id.")),
    security(("ledger_api_key" = [], "ledger_api_secret" = [])),
    responses(
        (status = 200, description = "The transfer.", body = TransferView),
        (status = 400, description = "The id is not a uuid.", body = ErrorBody),
        (status = 404, description = "No such transfer (or none of the caller's accounts is in it).", body = ErrorBody),
        ReadFaults,
    )
)]
async fn get(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, LedgerError> {
    let caller = caller(&state, &request).await?;
    let id = Uuid::parse_str(&path).map_err(|_| LedgerError::invalid(format!("'{path}' is not a uuid.")))?;
    let found =
        state.engine.ledger().transfer_in_reach(TransferId(id), caller.reach()).await.map_err(LedgerError::fault)?;
    match found {
        Some(transfer) => Ok(HttpResponse::Ok().json(TransferView::of(&transfer))),
        None => Err(LedgerError::not_found("transfer")),
    }
}
