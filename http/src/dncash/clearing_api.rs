//! Clearing API (`/dnapi/clearing/v1`, scope `clearing-api`): settlement rows of COMPLETED
//! cash-outs and cash-ins, their sums, and the customers they name (spec §7.2).
//!
//! Scoping: a customer sees the rows it is debitor or creditor of; an admin (roles text
//! containing `admin`) names a `customer_id` and sees that customer's rows, or nothing.
//! `from`/`to` are date strings read as JavaScript's `Date` reads its ISO and RFC 2822 forms;
//! anything else (epoch numbers included) matches nothing, as in the original.

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use cashgrid_actors::domain::TokenType;
use cashgrid_actors::engine::clearing::{is_admin, ClearingFilter};
use cashgrid_actors::store::{ClearingRow, ClearingSum, Customer, Scope};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime};
use serde::Serialize;
use serde_json::Value;
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use super::token_api::query_map;
use super::views::CustomerRow;
use super::{authenticate, resource, CLEARING_API};
use crate::error::ApiError;
use crate::openapi::schemas::{ApiKeyFaults, TokenTypeName};
use crate::{time, AppState};

/// The Clearing API's operations, as annotated on the handlers below.
#[derive(OpenApi)]
#[openapi(paths(list_tokens, get_token, sums, customers))]
pub(super) struct Document;

pub fn configure(config: &mut web::ServiceConfig) {
    config.service(
        web::scope("/dnapi/clearing/v1")
            .wrap(actix_web::middleware::from_fn(super::text::refuse_nul))
            .wrap(actix_web::middleware::from_fn(super::headers::express_headers))
            .service(resource::<CLEARING_API>("/tokens", "GET,HEAD").route(web::get().to(list_tokens)))
            .service(resource::<CLEARING_API>("/tokens/{uuid}", "GET,HEAD").route(web::get().to(get_token)))
            .service(resource::<CLEARING_API>("/sums", "GET,HEAD").route(web::get().to(sums)))
            .service(resource::<CLEARING_API>("/customers", "GET,HEAD").route(web::get().to(customers)))
            .default_service(web::to(super::not_found_in::<CLEARING_API>)),
    );
}

/// One clearing row as the original selects it; admins also get the two customer ids.
#[derive(Serialize, ToSchema)]
#[schema(as = ClearingRow)]
struct ClearingJson<'a> {
    /// When the token was confirmed.
    #[serde(serialize_with = "time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    date: i64,
    #[schema(format = Uuid)]
    uuid: String,
    #[serde(rename = "type")]
    #[schema(value_type = TokenTypeName)]
    token_type: &'static str,
    /// The phone's refname.
    #[schema(required = true, value_type = Option<String>)]
    tokendevice: &'a Option<String>,
    #[schema(required = true, value_type = Option<String>)]
    refname: &'a Option<String>,
    /// The cash device's refname.
    #[schema(required = true, value_type = Option<String>)]
    lockdevice: &'a Option<String>,
    #[schema(required = true, value_type = Option<String>)]
    lockrefname: &'a Option<String>,
    amount: i64,
    #[schema(value_type = String)]
    symbol: &'a str,
    /// The debitor's default account when the token was confirmed (JSON), or null.
    #[schema(required = true, value_type = Value)]
    debitor: &'a Option<Value>,
    /// The creditor's default account when the token was confirmed (JSON), or null.
    #[schema(required = true, value_type = Value)]
    creditor: &'a Option<Value>,
    /// Admins only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = i64)]
    debitor_id: Option<i64>,
    /// Admins only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = i64)]
    creditor_id: Option<i64>,
}

impl<'a> ClearingJson<'a> {
    fn of(row: &'a ClearingRow, admin: bool) -> Self {
        Self {
            date: row.date,
            uuid: row.token.uuid.to_string(),
            token_type: row.token.token_type.as_str(),
            tokendevice: &row.token_device_refname,
            refname: &row.token.refname,
            lockdevice: &row.lock_device_refname,
            lockrefname: &row.token.lockrefname,
            amount: row.token.amount,
            symbol: &row.token.symbol,
            debitor: &row.debitor,
            creditor: &row.creditor,
            debitor_id: admin.then_some(row.debitor_id),
            creditor_id: admin.then_some(row.creditor_id),
        }
    }
}

/// Count and sum of the clearing rows of one type, symbol, debitor and creditor.
#[derive(Serialize, ToSchema)]
#[schema(as = ClearingSum)]
struct SumJson<'a> {
    #[serde(rename = "type")]
    #[schema(value_type = TokenTypeName)]
    token_type: &'static str,
    #[schema(value_type = String)]
    symbol: &'a str,
    debitor_id: i64,
    creditor_id: i64,
    count: i64,
    /// Exact beyond 64 bits: a sum of many amounts.
    amount: i128,
}

impl<'a> SumJson<'a> {
    fn of(sum: &'a ClearingSum) -> Self {
        Self {
            token_type: sum.token_type.as_str(),
            symbol: &sum.symbol,
            debitor_id: sum.debitor_id,
            creditor_id: sum.creditor_id,
            count: sum.count,
            amount: sum.amount,
        }
    }
}

/// A customer's view of itself: the original also dropped `id`, `created` and `status`, and
/// leaked the password hash and 2FA secret, which cashgrid leaves out.
#[derive(Serialize, ToSchema)]
#[schema(as = OwnCustomer)]
struct OwnCustomerJson<'a> {
    #[schema(value_type = String)]
    email: &'a str,
    #[schema(required = true, value_type = Option<String>)]
    display_name: &'a Option<String>,
    #[schema(value_type = String)]
    roles: &'a str,
    /// JSON text.
    #[schema(required = true, value_type = Option<String>)]
    info: &'a Option<String>,
}

/// A row of `GET /customers`: what an admin sees, or what a customer sees of itself.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
enum CustomersAnswer<'a> {
    #[schema(value_type = CustomerRow)]
    Admin(CustomerRow<'a>),
    #[schema(value_type = OwnCustomerJson)]
    Own(OwnCustomerJson<'a>),
}

/// The query's filter; `None` when a value cannot match anything (an unreadable date, an
/// unknown type, a non-numeric customer id), which the original answered with `[]`.
fn filter(query: &HashMap<String, String>, with_type: bool) -> Option<ClearingFilter> {
    let date = |name: &str| match query.get(name) {
        None => Some(None),
        Some(text) => parse_js_date(text).map(Some),
    };
    let token_type = match query.get("type").filter(|_| with_type) {
        None => None,
        Some(text) => Some(TokenType::parse(text)?),
    };
    let customer_id = match query.get("customer_id") {
        None => None,
        Some(text) => Some(text.trim().parse().ok()?),
    };
    Some(ClearingFilter { from: date("from")?, to: date("to")?, token_type, customer_id })
}

/// Admins give `customer_id`; for everyone else it is ignored (so a bad one does no harm).
fn filter_for(customer: &Customer, query: &HashMap<String, String>, with_type: bool) -> Option<ClearingFilter> {
    if is_admin(customer) {
        return filter(query, with_type);
    }
    let mut own = query.clone();
    own.remove("customer_id");
    filter(&own, with_type)
}

/// The clearing rows the caller is debitor or creditor of.
#[utoipa::path(
    get,
    path = "/dnapi/clearing/v1/tokens",
    tag = "Clearing API",
    params(
        ("from" = Option<String>, Query, description = "A date string (ISO 8601 or RFC 2822; no offset is UTC). Anything else, epoch numbers included, matches nothing."),
        ("to" = Option<String>, Query, description = "A date string, as `from`."),
        ("customer_id" = Option<i64>, Query, description = "Admins: whose rows (without it they see none). Ignored for others."),
        ("type" = Option<TokenTypeName>, Query, description = "`CASHOUT` or `CASHIN` (any case); another value matches nothing."),
    ),
    responses((status = 200, description = "The rows, oldest first.", body = Vec<ClearingJson>), ApiKeyFaults),
    security(("dn_api_key" = [], "dn_api_secret" = []))
)]
async fn list_tokens(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let customer = authenticate(&state, &request, Scope::ClearingApi).await?;
    let rows = match filter_for(&customer, &query_map(&request), true) {
        Some(filter) => state.engine.clearing().rows(&customer, &filter).await.map_err(ApiError::from_fault)?,
        None => Vec::new(),
    };
    let admin = is_admin(&customer);
    Ok(crate::json_ok(rows.iter().map(|row| ClearingJson::of(row, admin)).collect::<Vec<_>>()))
}

/// One token's clearing row in my scope; 200 with an empty body when there is none.
/// One token's clearing row in the caller's scope.
#[utoipa::path(
    get,
    path = "/dnapi/clearing/v1/tokens/{uuid}",
    tag = "Clearing API",
    params(
        ("uuid" = String, Path, min_length = 1, format = Uuid, description = "The token's uuid."),
        ("customer_id" = Option<i64>, Query, description = "Admins: whose row. Ignored for others."),
    ),
    responses(
        (status = 200, description = "The row (`ClearingRow`) as JSON, or an empty body when there is none (as in the original)."),
        ApiKeyFaults,
    ),
    security(("dn_api_key" = [], "dn_api_secret" = []))
)]
async fn get_token(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let customer = authenticate(&state, &request, Scope::ClearingApi).await?;
    let empty = || HttpResponse::Ok().content_type(crate::JSON_CONTENT_TYPE).finish();
    let (Ok(uuid), Some(filter)) = (Uuid::parse_str(&path), filter_for(&customer, &query_map(&request), false)) else {
        return Ok(empty());
    };
    let row = state.engine.clearing().row(&customer, uuid, filter.customer_id).await.map_err(ApiError::from_fault)?;
    Ok(match row {
        Some(row) => crate::json_ok(ClearingJson::of(&row, is_admin(&customer))),
        None => empty(),
    })
}

/// Counts and sums of the caller's clearing rows.
#[utoipa::path(
    get,
    path = "/dnapi/clearing/v1/sums",
    tag = "Clearing API",
    params(
        ("from" = Option<String>, Query, description = "A date string (ISO 8601 or RFC 2822; no offset is UTC). Anything else, epoch numbers included, matches nothing."),
        ("to" = Option<String>, Query, description = "A date string, as `from`."),
        ("customer_id" = Option<i64>, Query, description = "Admins: whose rows (without it they see none). Ignored for others."),
    ),
    responses((status = 200, description = "One row per type, symbol, debitor and creditor.", body = Vec<SumJson>), ApiKeyFaults),
    security(("dn_api_key" = [], "dn_api_secret" = []))
)]
async fn sums(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let customer = authenticate(&state, &request, Scope::ClearingApi).await?;
    let sums = match filter_for(&customer, &query_map(&request), false) {
        Some(filter) => state.engine.clearing().sums(&customer, &filter).await.map_err(ApiError::from_fault)?,
        None => Vec::new(),
    };
    Ok(crate::json_ok(sums.iter().map(SumJson::of).collect::<Vec<_>>()))
}

/// Admins: every customer. Others: their own row, without `id`, `created` and `status`.
#[utoipa::path(
    get,
    path = "/dnapi/clearing/v1/customers",
    tag = "Clearing API",
    responses(
        (status = 200, description = "Customers.", body = Vec<CustomersAnswer>),
        ApiKeyFaults,
    ),
    security(("dn_api_key" = [], "dn_api_secret" = []))
)]
async fn customers(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let customer = authenticate(&state, &request, Scope::ClearingApi).await?;
    let rows = state.engine.clearing().customers(&customer).await.map_err(ApiError::from_fault)?;
    let admin = is_admin(&customer);
    let views: Vec<_> = rows
        .iter()
        .map(|row| match admin {
            true => CustomersAnswer::Admin(CustomerRow::of(row)),
            false => CustomersAnswer::Own(OwnCustomerJson {
                email: &row.email,
                display_name: &row.display_name,
                roles: &row.roles,
                info: &row.info,
            }),
        })
        .collect();
    Ok(crate::json_ok(views))
}

/// A date string as JavaScript's `new Date(text)` reads it, in epoch ms; `None` for what it
/// cannot read. Accepted: the ISO forms (`YYYY`, `YYYY-MM`, `YYYY-MM-DD`, optionally `T` or a
/// space, `HH:mm`, `:ss`, `.sss`, and `Z` or `±HH:mm`) and RFC 2822 (`Tue, 10 Mar 2020
/// 16:23:37 GMT`). Date-only forms are UTC, as in JavaScript; a date-time without an offset is
/// read as UTC too (JavaScript would use the server's local zone). Epoch numbers are not
/// dates: they match nothing, as in the original.
pub fn parse_js_date(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc2822(text) {
        return Some(time.timestamp_millis());
    }
    let (date, rest) = match text.find(['T', 't', ' ']) {
        Some(index) => (&text[..index], Some(&text[index + 1..])),
        None => (text, None),
    };
    let date = iso_date(date)?;
    let Some(rest) = rest else {
        return Some(date.and_time(NaiveTime::MIN).and_utc().timestamp_millis());
    };
    let (clock, offset) = split_offset(rest)?;
    let time = iso_time(clock)?;
    let local = date.and_time(time).and_utc().timestamp_millis();
    Some(local - i64::from(offset.local_minus_utc()) * 1_000)
}

fn digits(text: &str, count: usize) -> Option<u32> {
    (text.len() == count && text.bytes().all(|byte| byte.is_ascii_digit())).then(|| text.parse().ok())?
}

fn iso_date(text: &str) -> Option<NaiveDate> {
    let (sign, unsigned) = match text.as_bytes().first() {
        Some(b'+') => (1, &text[1..]),
        Some(b'-') => (-1, &text[1..]),
        _ => (0, text),
    };
    let mut parts = unsigned.split('-');
    let year_text = parts.next()?;
    let year = if sign == 0 {
        i32::try_from(digits(year_text, 4)?).ok()?
    } else {
        sign * i32::try_from(digits(year_text, 6)?).ok()?
    };
    let month = match parts.next() {
        Some(text) => digits(text, 2)?,
        None => 1,
    };
    let day = match parts.next() {
        Some(text) => digits(text, 2)?,
        None => 1,
    };
    if parts.next().is_some() {
        return None;
    }
    NaiveDate::from_ymd_opt(year, month, day)
}

/// `HH:mm[:ss[.fff]]` and the offset after it (`Z`, `±HH:mm`, `±HHmm`; none is UTC).
fn split_offset(text: &str) -> Option<(&str, FixedOffset)> {
    if let Some(clock) = text.strip_suffix(['Z', 'z']) {
        return Some((clock, FixedOffset::east_opt(0)?));
    }
    let Some(index) = text.rfind(['+', '-']) else {
        return Some((text, FixedOffset::east_opt(0)?));
    };
    let (clock, offset) = text.split_at(index);
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let offset = offset[1..].replace(':', "");
    let hours = i32::try_from(digits(offset.get(..2)?, 2)?).ok()?;
    let minutes = i32::try_from(digits(offset.get(2..)?, 2)?).ok()?;
    if hours > 23 || minutes > 59 {
        return None;
    }
    Some((clock, FixedOffset::east_opt(sign * (hours * 3_600 + minutes * 60))?))
}

fn iso_time(text: &str) -> Option<NaiveTime> {
    let (clock, fraction) = match text.split_once('.') {
        Some((clock, fraction)) => (clock, Some(fraction)),
        None => (text, None),
    };
    let mut parts = clock.split(':');
    let hour = digits(parts.next()?, 2)?;
    let minute = digits(parts.next()?, 2)?;
    let second = match parts.next() {
        Some(text) => digits(text, 2)?,
        None if fraction.is_some() => return None,
        None => 0,
    };
    if parts.next().is_some() {
        return None;
    }
    let millis = match fraction {
        None => 0,
        Some(fraction) if !fraction.is_empty() && fraction.bytes().all(|byte| byte.is_ascii_digit()) => {
            // JavaScript keeps milliseconds: the first three digits, padded.
            let first: String = fraction.chars().chain("00".chars()).take(3).collect();
            first.parse().ok()?
        }
        Some(_) => return None,
    };
    NaiveTime::from_hms_milli_opt(hour, minute, second, millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARCH_10: i64 = 1_583_857_417_123; // 2020-03-10T16:23:37.123Z

    #[test]
    fn iso_dates_read_like_javascript() {
        assert_eq!(parse_js_date("2020-03-10T16:23:37.123Z"), Some(MARCH_10));
        assert_eq!(parse_js_date("2020-03-10T17:23:37.123+01:00"), Some(MARCH_10));
        assert_eq!(parse_js_date("2020-03-10T16:23:37.123456Z"), Some(MARCH_10));
        assert_eq!(parse_js_date("2020-03-10T16:23:37Z"), Some(MARCH_10 - 123));
        assert_eq!(parse_js_date("2020-03-10T16:23Z"), Some(MARCH_10 - 37_123));
        assert_eq!(parse_js_date("2020-03-10 16:23:37.123Z"), Some(MARCH_10));
        assert_eq!(parse_js_date("2020-03-10T16:23:37.123"), Some(MARCH_10), "no offset: UTC");
        assert_eq!(parse_js_date("2018-01-01T00:00:00Z"), Some(1_514_764_800_000));
        assert_eq!(parse_js_date("2018-01-01"), Some(1_514_764_800_000));
        assert_eq!(parse_js_date("2018-01"), Some(1_514_764_800_000));
        assert_eq!(parse_js_date("2018"), Some(1_514_764_800_000));
        assert_eq!(parse_js_date("Tue, 10 Mar 2020 16:23:37 GMT"), Some(MARCH_10 - 123));
    }

    #[test]
    fn epoch_numbers_and_nonsense_are_not_dates() {
        for text in [
            "1583857417123",
            "1583857417",
            "",
            "yesterday",
            "2020-13-01",
            "2020-02-30",
            "2020-03-10T25:00Z",
            "20200310",
        ] {
            assert_eq!(parse_js_date(text), None, "{text}");
        }
    }

    #[test]
    fn unreadable_values_make_a_filter_that_matches_nothing() {
        let query = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        assert!(filter(&query(&[("from", "1583857417123")]), true).is_none());
        assert!(filter(&query(&[("type", "NOPE")]), true).is_none());
        assert!(filter(&query(&[("customer_id", "x")]), true).is_none());
        let read = filter(&query(&[("from", "2018-01-01"), ("type", "cashin"), ("customer_id", "7")]), true);
        assert_eq!(
            read,
            Some(ClearingFilter {
                from: Some(1_514_764_800_000),
                to: None,
                token_type: Some(TokenType::Cashin),
                customer_id: Some(7)
            })
        );
        // Sums take no type.
        assert_eq!(filter(&query(&[("type", "NOPE")]), false), Some(ClearingFilter::default()));
    }
}
