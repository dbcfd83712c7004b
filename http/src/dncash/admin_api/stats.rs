//! Token statistics and the journal, the caller's own or (admin) everyone's.

use actix_web::{web, HttpRequest, HttpResponse};
use cashgrid_actors::engine::portal::JournalFilter;
use serde::Serialize;
use serde_json::Value;

use super::{portal_error, session};
use crate::dncash::token_api::query_map;
use crate::error::ApiError;
use crate::{time, AppState};

/// The journal's only entity.
const ENTITY: &str = "token";

#[derive(Serialize)]
struct TokenStatJson {
    state: &'static str,
    #[serde(rename = "type")]
    token_type: &'static str,
    amount: i128,
    count: i64,
}

/// `GET /tokenstat`: amounts and counts by state and type.
pub async fn token_stats(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let session = session(&state, &request).await?;
    let stats = state.engine.token_stats(&session).await.map_err(|error| portal_error(state.error_status, error))?;
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

#[derive(Serialize)]
struct JournalJson<'a> {
    id: i64,
    customer_id: i64,
    #[serde(serialize_with = "time::serialize")]
    created: i64,
    entity: &'static str,
    action: &'static str,
    data: &'a Value,
}

/// An integer query parameter; anything else is ignored.
fn integer(text: Option<&String>) -> Option<i64> {
    text.and_then(|text| text.trim().parse::<f64>().ok()).filter(|value| value.is_finite()).map(|value| value as i64)
}

/// `GET /journal?limit&from&to&filter`: newest first; `from`/`to` are epoch ms.
pub async fn journal(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let session = session(&state, &request).await?;
    let query = query_map(&request);
    let filter = JournalFilter {
        from: integer(query.get("from")),
        to: integer(query.get("to")),
        filter: query.get("filter").filter(|text| !text.is_empty()).cloned(),
        limit: integer(query.get("limit")).map(|limit| usize::try_from(limit).unwrap_or(0)),
    };
    let entries = state.engine.journal(&session, filter).await.map_err(|error| portal_error(state.error_status, error))?;
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

#[derive(Serialize)]
struct DeviceStatJson<'a> {
    email: &'a str,
    #[serde(rename = "type")]
    device_type: &'static str,
    refname: &'a Option<String>,
}

/// `GET /admin/devicestat` (admin): one row per device.
pub async fn device_stats(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let session = session(&state, &request).await?;
    let stats = state.engine.device_stats(&session).await.map_err(|error| portal_error(state.error_status, error))?;
    let rows: Vec<_> = stats
        .iter()
        .map(|stat| DeviceStatJson { email: &stat.email, device_type: stat.device_type.as_str(), refname: &stat.refname })
        .collect();
    Ok(crate::json_ok(rows))
}

#[derive(Serialize)]
struct AdminJournalJson<'a> {
    #[serde(serialize_with = "time::serialize")]
    created: i64,
    email: &'a Option<String>,
    entity: &'static str,
    action: &'static str,
}

/// `GET /admin/journal` (admin): the latest entries of all customers, newest first.
pub async fn admin_journal(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let session = session(&state, &request).await?;
    let entries = state.engine.admin_journal(&session).await.map_err(|error| portal_error(state.error_status, error))?;
    let rows: Vec<_> = entries
        .iter()
        .map(|entry| AdminJournalJson { created: entry.created, email: &entry.email, entity: ENTITY, action: entry.action })
        .collect();
    Ok(crate::json_ok(rows))
}
