//! The caller's API credentials: create, list by scope, reveal the secret with the password,
//! delete.

use actix_web::{web, HttpRequest, HttpResponse};
use cashgrid_actors::store::Access;
use serde::Serialize;
use serde_json::Value;

use super::{empty_ok, ok_packet, portal_error, row_id, session};
use crate::body::read_json;
use crate::dncash::token_api::query_map;
use crate::error::ApiError;
use crate::{time, AppState};

/// A `customer_access` row (§5.2). `apisecret` appears only when revealed; `refname` and
/// `info` are always null, as the original never set them.
#[derive(Serialize)]
struct AccessJson<'a> {
    id: i64,
    customer_id: i64,
    #[serde(serialize_with = "time::serialize")]
    created: i64,
    scope: &'static str,
    apikey: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    apisecret: Option<Option<&'a str>>,
    refname: Option<String>,
    info: Option<String>,
}

impl<'a> AccessJson<'a> {
    fn of(access: &'a Access, apisecret: Option<Option<&'a str>>) -> Self {
        Self {
            id: access.id,
            customer_id: access.customer_id,
            created: access.created,
            scope: access.scope.as_str(),
            apikey: &access.apikey,
            apisecret,
            refname: None,
            info: None,
        }
    }
}

/// `POST /access` `{"scope"}`: new credentials, without the secret.
pub async fn create(state: web::Data<AppState>, request: HttpRequest, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    let session = session(&state, &request).await?;
    let body = read_json(&request, payload).await?;
    let scope = match body.get("scope") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.clone()),
        Some(other) => Some(other.to_string()),
    };
    let access = state
        .engine
        .create_access(&session, scope.as_deref())
        .await
        .map_err(|error| portal_error(state.error_status, error))?;
    Ok(crate::json_ok(AccessJson::of(&access, None)))
}

/// `GET /access?scope=`: the caller's credentials of that scope (none without one).
pub async fn list(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let session = session(&state, &request).await?;
    let query = query_map(&request);
    let records = state
        .engine
        .list_access(&session, query.get("scope").map(String::as_str))
        .await
        .map_err(|error| portal_error(state.error_status, error))?;
    Ok(crate::json_ok(records.iter().map(|access| AccessJson::of(access, None)).collect::<Vec<_>>()))
}

/// `PUT /access/:id` `{"password"}`: the row with its secret; empty when it is not the caller's.
pub async fn reveal(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let session = session(&state, &request).await?;
    let body = read_json(&request, payload).await?;
    let password = body.get("password").and_then(Value::as_str).map(str::to_owned);
    let revealed = state
        .engine
        .reveal_access(&session, row_id(&path).unwrap_or(0), password)
        .await
        .map_err(|error| portal_error(state.error_status, error))?;
    Ok(match revealed {
        Some(revealed) => crate::json_ok(AccessJson::of(&revealed.access, Some(revealed.apisecret.as_deref()))),
        None => empty_ok(),
    })
}

/// `DELETE /access/:id`: an OK packet; the key stops authenticating at once on this node.
pub async fn delete(state: web::Data<AppState>, request: HttpRequest, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let session = session(&state, &request).await?;
    let deleted = match row_id(&path) {
        Some(id) => state.engine.delete_access(&session, id).await.map_err(|error| portal_error(state.error_status, error))?,
        None => 0,
    };
    Ok(ok_packet(deleted))
}
