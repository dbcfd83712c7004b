//! Accounts: open, read, list, freeze; balances now or as they stood at a time.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use cashgrid_actors::domain::ledger::{
    Account, AccountFlags, AccountId, AccountKind, Currency, NewAccount, Owner, OwnerKind,
};
use cashgrid_actors::engine::ledger::Opened;
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa::{OpenApi, PartialSchema, ToSchema};
use uuid::Uuid;

use super::error::{ChangeFaults, ErrorBody, ReadFaults};
use super::views::{AccountView, BalancesView};
use super::{account_id, body, caller, decimals, limit, query, resource, time_param, Caller, LedgerError};
use crate::openapi::schemas::names;
use crate::AppState;

#[derive(OpenApi)]
#[openapi(
    paths(open, list, get, balances, set_frozen),
    components(schemas(AccountKindName, OwnerKindName, AccountView, BalancesView))
)]
pub(super) struct Document;

pub(super) fn configure(config: &mut web::ServiceConfig) {
    config
        .service(resource("/accounts").route(web::post().to(open)).route(web::get().to(list)))
        .service(resource("/accounts/{id}").route(web::get().to(get)))
        .service(resource("/accounts/{id}/balances").route(web::get().to(balances)))
        .service(resource("/accounts/{id}/frozen").route(web::put().to(set_frozen)));
}

/// Longest owner id (a Bitcoin address, a wallet user's id, ...).
const OWNER_ID_MAX: usize = 255;

/// An account's kind on the wire.
pub struct AccountKindName;

impl PartialSchema for AccountKindName {
    fn schema() -> RefOr<Schema> {
        names(AccountKind::ALL.map(AccountKind::as_str), "What an account is for.")
    }
}

impl ToSchema for AccountKindName {}

/// An owner's kind on the wire.
pub struct OwnerKindName;

impl PartialSchema for OwnerKindName {
    fn schema() -> RefOr<Schema> {
        names(OwnerKind::ALL.map(OwnerKind::as_str), "Who an account belongs to.")
    }
}

impl ToSchema for OwnerKindName {}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct OwnerBody {
    #[schema(value_type = OwnerKindName)]
    kind: OwnerKind,
    #[schema(min_length = 1, max_length = 255)]
    id: String,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
struct FlagsBody {
    /// May not go below zero [default: true].
    debits_must_not_exceed_credits: Option<bool>,
    /// May not go above zero [default: false]; not together with the other.
    credits_must_not_exceed_debits: Option<bool>,
}

/// What opens an account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct OpenBody {
    /// Chosen by the client so that a retry names the same account; generated when absent.
    id: Option<Uuid>,
    /// A currency of the ledger's table (ISO 4217, and configured ones).
    #[schema(pattern = "^[A-Z]{3}$")]
    currency: String,
    /// [default: `customer`]; other kinds need a `ledger-operator` credential.
    #[schema(value_type = Option<AccountKindName>)]
    kind: Option<AccountKind>,
    /// [default: the customer it is kept for, `{"kind":"customer","id":"<customer id>"}`]
    owner: Option<OwnerBody>,
    /// The customer it is kept for [default: the caller's]; another one needs a
    /// `ledger-operator` credential.
    customer_id: Option<i64>,
    flags: Option<FlagsBody>,
}

fn new_account(caller: Caller, body: OpenBody) -> Result<NewAccount, LedgerError> {
    let kind = body.kind.unwrap_or(AccountKind::Customer);
    let customer = body.customer_id.unwrap_or(caller.customer);
    if !caller.operator && kind != AccountKind::Customer {
        return Err(LedgerError::forbidden("Only a ledger-operator credential opens accounts of this kind."));
    }
    if !caller.operator && customer != caller.customer {
        return Err(LedgerError::forbidden("A ledger-api credential opens accounts of its own customer only."));
    }
    let currency = Currency::new(&body.currency).ok_or_else(|| LedgerError::unknown_currency(&body.currency))?;
    let owner = match body.owner {
        Some(owner) if owner.id.is_empty() || owner.id.chars().count() > OWNER_ID_MAX => {
            return Err(LedgerError::invalid(format!("owner.id must have 1 to {OWNER_ID_MAX} characters.")));
        }
        Some(owner) => Owner { kind: owner.kind, id: owner.id },
        None => Owner { kind: OwnerKind::Customer, id: customer.to_string() },
    };
    let given = body.flags.unwrap_or_default();
    let defaults = AccountFlags::default();
    let flags = AccountFlags {
        debits_must_not_exceed_credits: given
            .debits_must_not_exceed_credits
            .unwrap_or(defaults.debits_must_not_exceed_credits),
        credits_must_not_exceed_debits: given
            .credits_must_not_exceed_debits
            .unwrap_or(defaults.credits_must_not_exceed_debits),
        frozen: false,
    };
    if flags.debits_must_not_exceed_credits && flags.credits_must_not_exceed_debits {
        return Err(LedgerError::invalid(
            "An account keeps one limit at most: debits_must_not_exceed_credits or credits_must_not_exceed_debits.",
        ));
    }
    let id = AccountId(body.id.unwrap_or_else(Uuid::new_v4));
    Ok(NewAccount { id, customer, owner, currency, kind, flags })
}

fn account_json(state: &AppState, status: StatusCode, account: &Account) -> HttpResponse {
    HttpResponse::build(status).json(AccountView::of(account, decimals(state, &account.currency)))
}

/// Open an account. The same request again answers the account (200); another account under
/// the id is a 409.
#[utoipa::path(
    post,
    path = "/ledger/v1/accounts",
    tag = "Accounts",
    request_body = OpenBody,
    security(("ledger_api_key" = [], "ledger_api_secret" = [])),
    responses(
        (status = 201, description = "Opened.", body = AccountView),
        (status = 200, description = "Opened before with the same fields: the account.", body = AccountView),
        (status = 400, description = "Malformed body, unknown currency or customer.", body = ErrorBody),
        (status = 403, description = "A kind or customer only an operator may open.", body = ErrorBody),
        (status = 409, description = "Another account has this id.", body = ErrorBody),
        ChangeFaults,
    )
)]
async fn open(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, LedgerError> {
    let caller = caller(&state, &request).await?;
    let new = new_account(caller, body::<OpenBody>(&request, payload).await?)?;
    match state.engine.ledger().open(new.clone()).await.map_err(LedgerError::fault)? {
        Opened::Created(account) => Ok(account_json(&state, StatusCode::CREATED, &account)),
        Opened::Exists(account) => Ok(account_json(&state, StatusCode::OK, &account)),
        Opened::ExistsWithDifferentFields(_) => {
            Err(LedgerError::exists(format!("Another account has the id {}.", new.id)))
        }
        Opened::UnknownCurrency => Err(LedgerError::unknown_currency(new.currency.code())),
        Opened::UnknownCustomer => Err(LedgerError::unknown_customer(new.customer)),
    }
}

/// A page of accounts.
#[derive(Serialize, ToSchema)]
struct AccountPage {
    accounts: Vec<AccountView>,
    /// Give it as `after` for the next page; null on the last page.
    #[schema(required = true, format = Uuid)]
    next: Option<String>,
}

/// List accounts: the caller's customer's by default; an operator may name another
/// `customer_id`, and anyone may filter by owner (a customer sees its own accounts only).
#[utoipa::path(
    get,
    path = "/ledger/v1/accounts",
    tag = "Accounts",
    params(
        ("customer_id" = Option<i64>, Query, description = "Whose accounts (an operator's credential for another customer)."),
        ("owner_kind" = Option<OwnerKindName>, Query, description = "With `owner_id`: the accounts of this owner."),
        ("owner_id" = Option<String>, Query, description = "With `owner_kind`."),
        ("after" = Option<String>, Query, description = "The `next` of the previous page."),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "At most this many [default: 100]."),
    ),
    security(("ledger_api_key" = [], "ledger_api_secret" = [])),
    responses(
        (status = 200, description = "A page of accounts, by id.", body = AccountPage),
        (status = 400, description = "A malformed parameter.", body = ErrorBody),
        (status = 403, description = "Another customer's accounts without an operator's credential.", body = ErrorBody),
        ReadFaults,
    )
)]
async fn list(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, LedgerError> {
    let caller = caller(&state, &request).await?;
    let query = query(&request)?;
    let limit = limit(&query, super::LIST_LIMIT_MAX)?;
    let after = query.get("after").map(|text| account_id(text)).transpose()?;
    let ledger = state.engine.ledger();
    let owner = match (query.get("owner_kind"), query.get("owner_id")) {
        (None, None) => None,
        (Some(kind), Some(id)) => Some(Owner {
            kind: OwnerKind::parse(kind)
                .ok_or_else(|| LedgerError::invalid(format!("Unknown owner_kind '{kind}'.")))?,
            id: id.clone(),
        }),
        _ => return Err(LedgerError::invalid("owner_kind and owner_id go together.")),
    };
    let page = match owner {
        Some(owner) => ledger.accounts_of_owner(&owner, after, limit).await,
        None => {
            let customer = match query.get("customer_id") {
                None => caller.customer,
                Some(text) => text.parse().map_err(|_| LedgerError::invalid("customer_id must be a number."))?,
            };
            if customer != caller.customer && !caller.operator {
                return Err(LedgerError::forbidden("A ledger-api credential lists its own customer's accounts only."));
            }
            ledger.accounts_of_customer(customer, after, limit).await
        }
    }
    .map_err(LedgerError::fault)?;
    let next = (page.len() == limit).then(|| page.last().map(|account| account.id.to_string())).flatten();
    let reach = caller.reach();
    let accounts = page
        .iter()
        .filter(|account| reach.covers(account))
        .map(|account| AccountView::of(account, decimals(&state, &account.currency)))
        .collect();
    Ok(HttpResponse::Ok().json(AccountPage { accounts, next }))
}

/// The account, if the caller reaches it.
pub(super) async fn reached(state: &AppState, caller: Caller, id: &str) -> Result<Account, LedgerError> {
    let id = account_id(id)?;
    let found = state.engine.ledger().account_in_reach(id, caller.reach()).await.map_err(LedgerError::fault)?;
    found.ok_or_else(|| LedgerError::not_found("account"))
}

/// One account with its balances.
#[utoipa::path(
    get,
    path = "/ledger/v1/accounts/{id}",
    tag = "Accounts",
    params(("id" = Uuid, Path, description = "The account's id.")),
    security(("ledger_api_key" = [], "ledger_api_secret" = [])),
    responses(
        (status = 200, description = "The account as committed.", body = AccountView),
        (status = 400, description = "The id is not a uuid.", body = ErrorBody),
        (status = 404, description = "No such account (or not the caller's).", body = ErrorBody),
        ReadFaults,
    )
)]
async fn get(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, LedgerError> {
    let caller = caller(&state, &request).await?;
    let account = reached(&state, caller, &path).await?;
    Ok(account_json(&state, StatusCode::OK, &account))
}

#[derive(Serialize, ToSchema)]
struct BalancesAnswer {
    #[schema(format = Uuid)]
    account_id: String,
    currency: String,
    decimals: u8,
    /// The time asked for; null for now.
    #[serde(serialize_with = "crate::time::serialize_option")]
    #[schema(required = true, value_type = Option<String>, format = DateTime)]
    at: Option<i64>,
    balances: BalancesView,
}

/// An account's balances: as committed now, or as they stood at `at` (after every change at
/// or before it).
#[utoipa::path(
    get,
    path = "/ledger/v1/accounts/{id}/balances",
    tag = "Accounts",
    params(
        ("id" = Uuid, Path, description = "The account's id."),
        ("at" = Option<String>, Query, description = "Epoch ms, an RFC 3339 date-time or a date (YYYY-MM-DD, its midnight UTC)."),
    ),
    security(("ledger_api_key" = [], "ledger_api_secret" = [])),
    responses(
        (status = 200, description = "The balances.", body = BalancesAnswer),
        (status = 400, description = "A malformed id or time.", body = ErrorBody),
        (status = 404, description = "No such account (or not the caller's).", body = ErrorBody),
        ReadFaults,
    )
)]
async fn balances(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, LedgerError> {
    let caller = caller(&state, &request).await?;
    let at = time_param(&query(&request)?, "at")?;
    let account = reached(&state, caller, &path).await?;
    let balances = match at {
        None => account.balances,
        Some(at) => {
            state.engine.ledger().balances_before(account.id, at.saturating_add(1)).await.map_err(LedgerError::fault)?
        }
    };
    Ok(HttpResponse::Ok().json(BalancesAnswer {
        account_id: account.id.to_string(),
        currency: account.currency.code().to_owned(),
        decimals: decimals(&state, &account.currency),
        at,
        balances: BalancesView::of(&balances),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct FrozenBody {
    frozen: bool,
}

/// Freeze an account (it takes no new transfer; its holds may still be voided or expire) or
/// unfreeze it. Operators only.
#[utoipa::path(
    put,
    path = "/ledger/v1/accounts/{id}/frozen",
    tag = "Accounts",
    params(("id" = Uuid, Path, description = "The account's id.")),
    request_body = FrozenBody,
    security(("ledger_api_key" = [], "ledger_api_secret" = [])),
    responses(
        (status = 200, description = "The account with its flag set.", body = AccountView),
        (status = 400, description = "A malformed id or body.", body = ErrorBody),
        (status = 403, description = "Not an operator's credential.", body = ErrorBody),
        (status = 404, description = "No such account.", body = ErrorBody),
        ChangeFaults,
    )
)]
async fn set_frozen(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, LedgerError> {
    let caller = caller(&state, &request).await?;
    if !caller.operator {
        return Err(LedgerError::forbidden("Only a ledger-operator credential freezes accounts."));
    }
    let id = account_id(&path)?;
    let FrozenBody { frozen } = body(&request, payload).await?;
    match state.engine.ledger().set_frozen(id, frozen).await.map_err(LedgerError::fault)? {
        Some(account) => Ok(account_json(&state, StatusCode::OK, &account)),
        None => Err(LedgerError::not_found("account")),
    }
}
