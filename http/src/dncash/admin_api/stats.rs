//! Token statistics and the journal, the caller's own or (admin) everyone's.

use actix_web::{web, HttpRequest, HttpResponse};
use cashgrid_actors::engine::portal::JournalFilter;
use serde::Serialize;
use serde_json::Value;
use utoipa::{OpenApi, ToSchema};

use super::{portal_error, session};
use crate::dncash::token_api::query_map;
use crate::error::{ApiError, GlobalError};
use crate::openapi::schemas::{DeviceTypeName, SessionFaults, TokenStateName, TokenTypeName};
use crate::{time, AppState};

/// Statistics and journals.
#[derive(OpenApi)]
#[openapi(paths(token_stats, journal, device_stats, admin_journal))]
pub(super) struct Document;

/// The journal's only entity.
const ENTITY: &str = "token";

/// Sum and count of the caller's tokens of one state and type.
#[derive(Serialize, ToSchema)]
#[schema(as = TokenStat)]
struct TokenStatJson {
    #[schema(value_type = TokenStateName)]
    state: &'static str,
    #[serde(rename = "type")]
    #[schema(value_type = TokenTypeName)]
    token_type: &'static str,
    amount: i128,
    count: i64,
}

/// `GET /tokenstat`: amounts and counts by state and type.
#[utoipa::path(
    get,
    path = "/dnapi/admin/v1/tokenstat",
    tag = "Admin API",
    responses((status = 200, description = "The caller's tokens by state and type.", body = Vec<TokenStatJson>), SessionFaults),
    security(("portal_jwt" = []))
)]
pub async fn token_stats(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let session = session(&state, &request).await?;
    let stats =
        state.engine.portal().token_stats(&session).await.map_err(|error| portal_error(state.error_status, error))?;
    let rows: Vec<_> = stats
        .iter()
        .map(|stat| TokenStatJson {
            state: stat.state.as_str(),
            token_type: stat.token_type.as_str(),
            amount: stat.amount,
            count: stat.count,
        })
        .collect();
    Ok(crate::json_ok(rows))
}

/// A journal entry: a token's change.
#[derive(Serialize, ToSchema)]
#[schema(as = JournalEntry)]
struct JournalJson<'a> {
    id: i64,
    customer_id: i64,
    #[serde(serialize_with = "time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    created: i64,
    /// Always `token`.
    entity: &'static str,
    action: &'static str,
    /// The token as JSON.
    #[schema(value_type = Value)]
    data: &'a Value,
}

/// An integer query parameter; anything else is ignored.
fn integer(text: Option<&String>) -> Option<i64> {
    text.and_then(|text| text.trim().parse::<f64>().ok()).filter(|value| value.is_finite()).map(|value| value as i64)
}

/// `GET /journal?limit&from&to&filter`: newest first; `from`/`to` are epoch ms.
#[utoipa::path(
    get,
    path = "/dnapi/admin/v1/journal",
    tag = "Admin API",
    params(
        ("limit" = Option<String>, Query, description = "At most this many entries (a number)."),
        ("from" = Option<String>, Query, description = "Epoch milliseconds."),
        ("to" = Option<String>, Query, description = "Epoch milliseconds."),
        ("filter" = Option<String>, Query, description = "Text the entry's data must contain."),
    ),
    responses((status = 200, description = "The caller's journal, newest first.", body = Vec<JournalJson>), SessionFaults),
    security(("portal_jwt" = []))
)]
pub async fn journal(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let session = session(&state, &request).await?;
    let query = query_map(&request);
    let filter = JournalFilter {
        from: integer(query.get("from")),
        to: integer(query.get("to")),
        filter: query.get("filter").filter(|text| !text.is_empty()).cloned(),
        limit: integer(query.get("limit")).map(|limit| usize::try_from(limit).unwrap_or(0)),
    };
    let entries = state
        .engine
        .portal()
        .journal(&session, filter)
        .await
        .map_err(|error| portal_error(state.error_status, error))?;
    let rows: Vec<_> = entries
        .iter()
        .map(|entry| JournalJson {
            id: entry.id,
            customer_id: entry.customer_id,
            created: entry.created,
            entity: ENTITY,
            action: entry.action,
            data: &entry.data,
        })
        .collect();
    Ok(crate::json_ok(rows))
}

/// A device and its owner.
#[derive(Serialize, ToSchema)]
#[schema(as = DeviceStat)]
struct DeviceStatJson<'a> {
    #[schema(value_type = String)]
    email: &'a str,
    #[serde(rename = "type")]
    #[schema(value_type = DeviceTypeName)]
    device_type: &'static str,
    #[schema(required = true, value_type = Option<String>)]
    refname: &'a Option<String>,
}

/// `GET /admin/devicestat` (admin): one row per device.
#[utoipa::path(
    get,
    path = "/dnapi/admin/v1/admin/devicestat",
    tag = "Admin API",
    responses(
        (status = 200, description = "One row per device of every customer.", body = Vec<DeviceStatJson>),
        (status = 403, description = "`Illegal access: Not allowed.`: admins only.", body = GlobalError),
        SessionFaults,
    ),
    security(("portal_jwt" = []))
)]
pub async fn device_stats(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let session = session(&state, &request).await?;
    let stats =
        state.engine.portal().device_stats(&session).await.map_err(|error| portal_error(state.error_status, error))?;
    let rows: Vec<_> = stats
        .iter()
        .map(|stat| DeviceStatJson {
            email: &stat.email,
            device_type: stat.device_type.as_str(),
            refname: &stat.refname,
        })
        .collect();
    Ok(crate::json_ok(rows))
}

/// A journal entry of any customer.
#[derive(Serialize, ToSchema)]
#[schema(as = AdminJournalEntry)]
struct AdminJournalJson<'a> {
    #[serde(serialize_with = "time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    created: i64,
    #[schema(required = true, value_type = Option<String>)]
    email: &'a Option<String>,
    /// Always `token`.
    entity: &'static str,
    action: &'static str,
}

/// `GET /admin/journal` (admin): the latest entries of all customers, newest first.
#[utoipa::path(
    get,
    path = "/dnapi/admin/v1/admin/journal",
    tag = "Admin API",
    responses(
        (status = 200, description = "The latest journal entries of all customers, newest first.", body = Vec<AdminJournalJson>),
        (status = 403, description = "`Illegal access: Not allowed.`: admins only.", body = GlobalError),
        SessionFaults,
    ),
    security(("portal_jwt" = []))
)]
pub async fn admin_journal(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let session = session(&state, &request).await?;
    let entries =
        state.engine.portal().admin_journal(&session).await.map_err(|error| portal_error(state.error_status, error))?;
    let rows: Vec<_> = entries
        .iter()
        .map(|entry| AdminJournalJson {
            created: entry.created,
            email: &entry.email,
            entity: ENTITY,
            action: entry.action,
        })
        .collect();
    Ok(crate::json_ok(rows))
}
