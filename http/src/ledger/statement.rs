//! An account's transfers and its statement (journal lines with the sums after each) over a
//! time range, paged by a cursor; the statement also as CSV, in major units.

use std::fmt::Write as _;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use cashgrid_actors::domain::ledger::{major_units, Balances};
use cashgrid_actors::store::{EntryRange, LedgerEntry};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use super::accounts::reached;
use super::error::{ErrorBody, ReadFaults};
use super::views::{BalancesView, LineView, TransferView};
use super::{caller, decimals, journal_cursor, journal_cursor_text, limit, query, resource, time_range, LedgerError};
use crate::AppState;

#[derive(OpenApi)]
#[openapi(paths(transfers, statement), components(schemas(LineView)))]
pub(super) struct Document;

pub(super) fn configure(config: &mut web::ServiceConfig) {
    config
        .service(resource("/accounts/{id}/transfers").route(web::get().to(transfers)))
        .service(resource("/accounts/{id}/statement").route(web::get().to(statement)));
}

/// Most lines of one statement page.
const STATEMENT_LIMIT_MAX: usize = 10_000;
const CSV_CONTENT_TYPE: &str = "text/csv; charset=utf-8";
/// The header naming the next page's cursor of a CSV statement.
const NEXT_HEADER: &str = "x-next-cursor";

/// The time range and cursor of a journal query, as the documents show them.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Describes the parameters; `range` reads them.
struct JournalRange {
    /// From this time (inclusive): epoch ms, an RFC 3339 date-time or a date (YYYY-MM-DD).
    from: Option<String>,
    /// Until this time (exclusive), as `from`.
    until: Option<String>,
    /// The `next` of the previous page.
    after: Option<String>,
}

/// The range and cursor of a journal query.
fn range(request: &HttpRequest, max: usize) -> Result<EntryRange, LedgerError> {
    let query = query(request)?;
    let (from, until) = time_range(&query)?;
    Ok(EntryRange { from, until, after: journal_cursor(&query)?, limit: limit(&query, max)? })
}

#[derive(Serialize, ToSchema)]
struct TransferPage {
    transfers: Vec<TransferView>,
    /// Give it as `after` for the next page; null on the last page.
    #[schema(required = true)]
    next: Option<String>,
}

/// The transfers that moved an account in a time range, oldest first (by when they were
/// applied to it).
#[utoipa::path(
    get,
    path = "/ledger/v1/accounts/{id}/transfers",
    tag = "Statements",
    params(
        ("id" = Uuid, Path, description = "The account's id."),
        JournalRange,
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "At most this many [default: 100]."),
    ),
    security(("ledger_api_key" = [], "ledger_api_secret" = [])),
    responses(
        (status = 200, description = "A page of transfers.", body = TransferPage),
        (status = 400, description = "A malformed id, time, cursor or limit.", body = ErrorBody),
        (status = 404, description = "No such account (or not the caller's).", body = ErrorBody),
        ReadFaults,
    )
)]
async fn transfers(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, LedgerError> {
    let caller = caller(&state, &request).await?;
    let range = range(&request, super::LIST_LIMIT_MAX)?;
    let account = reached(&state, caller, &path).await?;
    let page = state.engine.ledger().account_transfers(account.id, range).await.map_err(LedgerError::fault)?;
    let next =
        (page.len() == range.limit).then(|| page.last().map(|last| journal_cursor_text(last.at, last.seq))).flatten();
    let transfers = page.iter().map(|item| TransferView::of(&item.transfer)).collect();
    Ok(HttpResponse::Ok().json(TransferPage { transfers, next }))
}

#[derive(Serialize, ToSchema)]
struct Statement {
    #[schema(format = Uuid)]
    account_id: String,
    currency: String,
    decimals: u8,
    #[serde(serialize_with = "crate::time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    from: i64,
    /// Exclusive; null for "until now".
    #[serde(serialize_with = "crate::time::serialize_option")]
    #[schema(required = true, value_type = Option<String>, format = DateTime)]
    until: Option<i64>,
    /// The sums before the first line (first page only; null on the pages after).
    #[schema(required = true)]
    opening: Option<BalancesView>,
    /// The sums after the last line of this page (the opening ones when it has none).
    #[schema(required = true)]
    closing: Option<BalancesView>,
    lines: Vec<LineView>,
    /// Give it as `after` for the next page; null on the last page.
    #[schema(required = true)]
    next: Option<String>,
}

/// An account's statement: its journal lines in a time range, each with the sums after it, as
/// JSON, or as CSV (`format=csv`, or `Accept: text/csv`) with amounts in major units and the
/// next page's cursor in the `X-Next-Cursor` header.
#[utoipa::path(
    get,
    path = "/ledger/v1/accounts/{id}/statement",
    tag = "Statements",
    params(
        ("id" = Uuid, Path, description = "The account's id."),
        JournalRange,
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 10000, description = "At most this many lines [default: 100]."),
        ("format" = Option<String>, Query, description = "`json` [default] or `csv`."),
    ),
    security(("ledger_api_key" = [], "ledger_api_secret" = [])),
    responses(
        (status = 200, description = "The statement.", body = Statement, content_type = "application/json"),
        (status = 400, description = "A malformed id, time, cursor, limit or format.", body = ErrorBody),
        (status = 404, description = "No such account (or not the caller's).", body = ErrorBody),
        ReadFaults,
    )
)]
async fn statement(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, LedgerError> {
    let caller = caller(&state, &request).await?;
    let csv = match query(&request)?.get("format").map(String::as_str) {
        None => accepts_csv(&request),
        Some("json") => false,
        Some("csv") => true,
        Some(other) => return Err(LedgerError::invalid(format!("Unknown format '{other}': json or csv."))),
    };
    let range = range(&request, STATEMENT_LIMIT_MAX)?;
    let account = reached(&state, caller, &path).await?;
    let ledger = state.engine.ledger();
    let opening = match range.after {
        None => Some(ledger.balances_before(account.id, range.from).await.map_err(LedgerError::fault)?),
        Some(_) => None,
    };
    let lines = ledger.entries(account.id, range).await.map_err(LedgerError::fault)?;
    let next =
        (lines.len() == range.limit).then(|| lines.last().map(|last| journal_cursor_text(last.at, last.seq))).flatten();
    let closing = lines.last().map(|line| line.balances).or(opening);
    let places = decimals(&state, &account.currency);
    if csv {
        let mut response = HttpResponse::Ok();
        response.content_type(CSV_CONTENT_TYPE);
        if let Some(next) = &next {
            response.insert_header((NEXT_HEADER, next.as_str()));
        }
        return Ok(response.body(csv_text(&lines, places)));
    }
    Ok(HttpResponse::Ok().json(Statement {
        account_id: account.id.to_string(),
        currency: account.currency.code().to_owned(),
        decimals: places,
        from: range.from,
        until: (range.until != i64::MAX).then_some(range.until),
        opening: opening.as_ref().map(BalancesView::of),
        closing: closing.as_ref().map(BalancesView::of),
        lines: lines.iter().map(LineView::of).collect(),
        next,
    }))
}

fn accepts_csv(request: &HttpRequest) -> bool {
    request
        .headers()
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.split(',').any(|item| item.trim().starts_with("text/csv")))
}

const CSV_HEADER: &str = "seq,at,kind,transfer_id,side,amount,debits_pending,debits_posted,credits_pending,\
                          credits_posted,posted,available\n";

/// The lines as CSV, amounts in major units. Every field is a number, a uuid, a time or one of
/// the fixed words, so none needs quoting.
fn csv_text(lines: &[LedgerEntry], decimals: u8) -> String {
    let mut text = String::from(CSV_HEADER);
    let major = |minor: u128| major_units(i128::try_from(minor).unwrap_or(i128::MAX), decimals);
    for line in lines {
        let Balances { debits_pending, debits_posted, credits_pending, credits_posted } = line.balances;
        let posted = line.balances.net_posted();
        let available = posted - debits_pending as i128;
        // Writing to a String cannot fail.
        let _ = writeln!(
            text,
            "{},{},{},{},{},{},{},{},{},{},{},{}",
            line.seq,
            crate::time::iso_millis(line.at).unwrap_or_default(),
            line.kind,
            line.transfer.map(|id| id.to_string()).unwrap_or_default(),
            line.side.map(|side| side.as_str()).unwrap_or_default(),
            line.amount.map(|amount| major_units(i128::from(amount), decimals)).unwrap_or_default(),
            major(debits_pending),
            major(debits_posted),
            major(credits_pending),
            major(credits_posted),
            major_units(posted, decimals),
            major_units(available, decimals),
        );
    }
    text
}
