//! Customers (admin only): list, change, delete, and reset another user's two-factor login.

use actix_web::{web, HttpRequest, HttpResponse};
use cashgrid_actors::store::CustomerUpdate;
use serde_json::Value;

use super::{invalid, ok_packet, portal_error, session, token_answer};
use crate::body::read_json;
use crate::dncash::views::CustomerRow;
use crate::error::ApiError;
use crate::{AppState, ErrorStatus};

pub async fn list(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let session = session(&state, &request).await?;
    let customers = state.engine.list_customers(&session).await.map_err(|error| portal_error(state.error_status, error))?;
    Ok(crate::json_ok(customers.iter().map(CustomerRow::of).collect::<Vec<_>>()))
}

/// The update body: every field overwritten, a missing one becomes NULL. `info` is JSON text
/// (a string holding JSON, as the original's JSON column required); other JSON is serialised.
fn customer_update(mode: ErrorStatus, body: &Value) -> Result<CustomerUpdate, ApiError> {
    let display_name = match body.get("display_name") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.clone()),
        Some(other) => Some(other.to_string()),
    };
    let roles = match body.get("roles") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.clone()),
        Some(Value::Array(items)) => {
            Some(items.iter().map(|item| item.as_str().map_or_else(|| item.to_string(), str::to_owned)).collect::<Vec<_>>().join(","))
        }
        Some(other) => Some(other.to_string()),
    };
    let info = match body.get("info") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => {
            if serde_json::from_str::<Value>(text).is_err() {
                return Err(invalid(mode, "ER_INVALID_JSON_TEXT: Invalid JSON text in column 'customer.info'".to_owned()));
            }
            Some(text.clone())
        }
        Some(other) => Some(other.to_string()),
    };
    Ok(CustomerUpdate { display_name, roles, info })
}

/// `PUT /customers/:email` `{display_name, roles, info}`: an OK packet.
pub async fn update(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let session = session(&state, &request).await?;
    let body = read_json(&request, payload).await?;
    if !session.is_admin() {
        // The admin check comes before any look at the body.
        return Err(portal_error(
            state.error_status,
            cashgrid_actors::engine::portal::PortalRejection::NotAllowed.into(),
        ));
    }
    let update = customer_update(state.error_status, &body)?;
    let matched = state
        .engine
        .update_customer(&session, &path, &update)
        .await
        .map_err(|error| portal_error(state.error_status, error))?;
    Ok(ok_packet(matched))
}

/// `DELETE /customers/:email`: an OK packet; refused while other rows reference the customer.
pub async fn delete(state: web::Data<AppState>, request: HttpRequest, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let session = session(&state, &request).await?;
    let deleted =
        state.engine.delete_customer(&session, &path).await.map_err(|error| portal_error(state.error_status, error))?;
    Ok(ok_packet(deleted))
}

/// `DELETE /customers/:email/twofa`: that user's two-factor login off; the original answers
/// with a session of that user.
pub async fn reset_twofa(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let session = session(&state, &request).await?;
    let token = state.engine.reset_twofa(&session, &path).await.map_err(|error| portal_error(state.error_status, error))?;
    Ok(token_answer(token))
}
