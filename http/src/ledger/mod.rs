//! The Ledger API (`/ledger/v1`): accounts, transfers (one, or batches of linked chains),
//! balances, an account's transfers and statement (JSON or CSV), and a live feed of the
//! journal over WebSocket (`feed.rs`). Credentials are the dncash
//! headers `DN-API-KEY`/`DN-API-SECRET` of a `ledger-api` credential (a customer's own
//! accounts) or a `ledger-operator` one (every account). Errors answer
//! `{"error":{"code":C,"message":M}}` (`error.rs`); client mistakes are 4xx.

mod accounts;
pub mod error;
mod feed;
mod statement;
mod transfers;
pub mod views;

use std::collections::HashMap;

use actix_web::{web, HttpRequest};
use cashgrid_actors::domain::ledger::{AccountId, Reach};
use cashgrid_actors::domain::{CustomerId, Millis};
use cashgrid_actors::store::Scope;
use chrono::NaiveDate;
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};

use crate::AppState;
pub use error::LedgerError;
pub use feed::register_initial_series;

/// The API's path prefix.
pub const PREFIX: &str = "/ledger/v1";
/// Most items a list answers at once, and how many when the request does not say.
const LIST_LIMIT_MAX: usize = 1_000;
const LIST_LIMIT_DEFAULT: usize = 100;
/// The body limit: a batch of 1,000 transfers with references and metadata.
pub const BODY_LIMIT_BYTES: usize = 2 * 1024 * 1024;

pub fn configure(config: &mut web::ServiceConfig) {
    config.service(
        web::scope(PREFIX)
            .configure(accounts::configure)
            .configure(transfers::configure)
            .configure(statement::configure)
            .configure(feed::configure)
            .default_service(web::to(not_found)),
    );
}

async fn not_found() -> Result<actix_web::HttpResponse, LedgerError> {
    Err(LedgerError::not_found("path under /ledger/v1"))
}

/// A path of the API: its routes, and the API's 405 for any other method.
pub(crate) fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

async fn method_not_allowed() -> Result<actix_web::HttpResponse, LedgerError> {
    Err(LedgerError::method_not_allowed())
}

/// The Ledger API's OpenAPI document.
pub fn document() -> Document {
    let mut document = LedgerDocument::openapi();
    document.merge(accounts::Document::openapi());
    document.merge(transfers::Document::openapi());
    document.merge(statement::Document::openapi());
    document.merge(feed::Document::openapi());
    SecuritySchemes.modify(&mut document);
    document
}

#[derive(OpenApi)]
#[openapi(
    info(title = "cashgrid Ledger API", description = include_str!("openapi.md")),
    components(schemas(error::ErrorBody, error::ErrorDetail)),
    tags(
        (name = "Accounts", description = "Open, read, list and freeze accounts; balances."),
        (name = "Transfers", description = "Move money: posted at once, held, a hold posted or voided; one at a time or in batches of linked chains."),
        (name = "Statements", description = "An account's transfers and journal lines over a time range, as JSON or CSV."),
    )
)]
struct LedgerDocument;

/// Security scheme names (the handlers' `security(...)` attributes spell them as literals).
pub const API_KEY: &str = "ledger_api_key";
pub const API_SECRET: &str = "ledger_api_secret";

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, document: &mut Document) {
        crate::openapi::add_key_pair(
            document,
            (API_KEY, API_SECRET),
            "The API key of a `ledger-api` or `ledger-operator` credential \
             (`cashgrid access create --customer E --scope ledger-api`).",
        );
    }
}

/// Who calls: the customer of the credentials, and whether they are an operator's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub customer: CustomerId,
    pub operator: bool,
}

impl Caller {
    pub fn reach(self) -> Reach {
        if self.operator {
            Reach::Every
        } else {
            Reach::Own(self.customer)
        }
    }
}

/// The caller of a request with ledger credentials; 401 for anything else.
pub async fn caller(state: &AppState, request: &HttpRequest) -> Result<Caller, LedgerError> {
    let Some((key, secret)) = crate::dncash::key_pair(request) else {
        return Err(LedgerError::credentials());
    };
    let scopes = [Scope::LedgerApi, Scope::LedgerOperator];
    match state.engine.access().authenticate_any(key, secret, &scopes).await {
        Ok(Some((customer, scope))) => Ok(Caller { customer: customer.id, operator: scope == Scope::LedgerOperator }),
        Ok(None) => Err(LedgerError::credentials()),
        Err(error) => Err(LedgerError::fault(error)),
    }
}

/// The query's parameters. Text the store cannot hold (NUL) is refused up front.
pub fn query(request: &HttpRequest) -> Result<HashMap<String, String>, LedgerError> {
    let text = request.query_string();
    if crate::dncash::text::has_encoded_nul(text) {
        return Err(LedgerError::invalid(crate::body::NUL_REFUSED));
    }
    web::Query::<HashMap<String, String>>::from_query(text)
        .map(web::Query::into_inner)
        .map_err(|error| LedgerError::invalid(format!("Invalid query: {error}")))
}

/// A JSON body as `T`: malformed JSON, NUL characters, unknown fields and wrong types are 400s.
pub async fn body<T: serde::de::DeserializeOwned>(
    request: &HttpRequest,
    payload: web::Payload,
) -> Result<T, LedgerError> {
    if !crate::body::is_json(request) {
        return Err(LedgerError::invalid("The body must be JSON (Content-Type: application/json)."));
    }
    let value = crate::body::read_json_limited(request, payload, BODY_LIMIT_BYTES).await?;
    serde_json::from_value(value).map_err(|error| LedgerError::invalid(format!("Invalid body: {error}")))
}

/// An account id from the path.
pub fn account_id(text: &str) -> Result<AccountId, LedgerError> {
    uuid::Uuid::parse_str(text).map(AccountId).map_err(|_| LedgerError::invalid(format!("'{text}' is not a uuid.")))
}

/// `limit`: 1 to [`LIST_LIMIT_MAX`] (`max` for statements), [`LIST_LIMIT_DEFAULT`] when absent.
pub fn limit(query: &HashMap<String, String>, max: usize) -> Result<usize, LedgerError> {
    match query.get("limit") {
        None => Ok(LIST_LIMIT_DEFAULT.min(max)),
        Some(text) => match text.parse::<usize>() {
            Ok(limit) if (1..=max).contains(&limit) => Ok(limit),
            _ => Err(LedgerError::invalid(format!("limit must be a whole number from 1 to {max}."))),
        },
    }
}

/// A time in a query: epoch milliseconds, an RFC 3339 date-time, or a date (its midnight UTC).
pub fn time_param(query: &HashMap<String, String>, name: &str) -> Result<Option<Millis>, LedgerError> {
    let Some(text) = query.get(name) else {
        return Ok(None);
    };
    let parsed = crate::time::parse_millis(text).or_else(|| {
        let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
        Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
    });
    parsed.map(Some).ok_or_else(|| {
        LedgerError::invalid(format!(
            "{name} must be epoch milliseconds, an RFC 3339 date-time or a date (YYYY-MM-DD)."
        ))
    })
}

/// The time range `from` (inclusive) to `until` (exclusive) of a query: all time by default.
pub fn time_range(query: &HashMap<String, String>) -> Result<(Millis, Millis), LedgerError> {
    let from = time_param(query, "from")?.unwrap_or(0);
    let until = time_param(query, "until")?.unwrap_or(Millis::MAX);
    if from > until {
        return Err(LedgerError::invalid("from must not be after until."));
    }
    Ok((from, until))
}

/// A journal cursor: `AT.SEQ` of the last item of the previous page.
pub fn journal_cursor(query: &HashMap<String, String>) -> Result<Option<(Millis, i64)>, LedgerError> {
    let Some(text) = query.get("after") else {
        return Ok(None);
    };
    let parsed = text.split_once('.').and_then(|(at, seq)| Some((at.parse().ok()?, seq.parse().ok()?)));
    parsed.map(Some).ok_or_else(|| LedgerError::invalid("after must be the `next` cursor of a previous page."))
}

pub fn journal_cursor_text(at: Millis, seq: i64) -> String {
    format!("{at}.{seq}")
}

/// The currency's decimal places as the table has them (0 for a code it no longer knows).
pub fn decimals(state: &AppState, currency: &cashgrid_actors::domain::ledger::Currency) -> u8 {
    state.engine.ledger().currencies().decimals(currency).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect()
    }

    #[test]
    fn times_read_as_millis_dates_or_date_times() {
        let read = |text| time_param(&map(&[("at", text)]), "at");
        assert_eq!(read("1700000000000"), Ok(Some(1_700_000_000_000)));
        assert_eq!(read("2026-11-28"), Ok(Some(1_795_824_000_000)));
        assert_eq!(read("2026-11-28T00:00:01.500Z"), Ok(Some(1_795_824_001_500)));
        assert!(read("yesterday").is_err());
        assert_eq!(time_param(&map(&[]), "at"), Ok(None));
        assert!(time_range(&map(&[("from", "2026-11-29"), ("until", "2026-11-28")])).is_err());
    }

    #[test]
    fn cursors_and_limits() {
        assert_eq!(journal_cursor(&map(&[("after", "17.4")])), Ok(Some((17, 4))));
        assert!(journal_cursor(&map(&[("after", "17")])).is_err());
        assert_eq!(limit(&map(&[]), 1_000), Ok(100));
        assert!(limit(&map(&[("limit", "0")]), 1_000).is_err());
        assert!(limit(&map(&[("limit", "1001")]), 1_000).is_err());
    }
}
