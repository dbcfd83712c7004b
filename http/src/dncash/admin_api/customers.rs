//! Customers (admin only): list, change, delete, and reset another user's two-factor login.

use actix_web::{web, HttpRequest, HttpResponse};
use cashgrid_actors::store::CustomerUpdate;
use serde_json::Value;
use utoipa::{OpenApi, ToSchema};

use super::{invalid, ok_packet, portal_error, session, token_answer, OkPacket, TokenAnswer};
use crate::body::read_json;
use crate::dncash::views::CustomerRow;
use crate::error::{ApiError, GlobalError};
use crate::openapi::schemas::{BodyFaults, SessionFaults};
use crate::{AppState, ErrorStatus};

/// The customers' operations (admins only).
#[derive(OpenApi)]
#[openapi(paths(list, update, delete, reset_twofa))]
pub(super) struct Document;

/// A customer's new display name, roles and info: every field is overwritten, a missing one
/// becomes null, and `roles` must be given.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the body in the documents; `customer_update` reads it field by field.
struct CustomerChange {
    #[schema(required = false)]
    display_name: Option<String>,
    /// Comma text (`user,admin`) or an array of roles.
    #[schema(value_type = Value)]
    roles: Value,
    /// JSON text (a string holding JSON), or JSON that is stored as text.
    #[schema(required = false)]
    info: Option<Value>,
}

#[utoipa::path(
    get,
    path = "/dnapi/admin/v1/customers",
    tag = "Admin API",
    responses(
        (status = 200, description = "Every customer, without password hash and TOTP secret.", body = Vec<CustomerRow>),
        (status = 403, description = "`Illegal access: Not allowed.`: admins only.", body = GlobalError),
        SessionFaults,
    ),
    security(("portal_jwt" = []))
)]
pub async fn list(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let session = session(&state, &request).await?;
    let customers = state
        .engine
        .portal()
        .list_customers(&session)
        .await
        .map_err(|error| portal_error(state.error_status, error))?;
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
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|item| item.as_str().map_or_else(|| item.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(","),
        ),
        Some(other) => Some(other.to_string()),
    };
    let info = match body.get("info") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => {
            if serde_json::from_str::<Value>(text).is_err() {
                return Err(invalid(
                    mode,
                    "ER_INVALID_JSON_TEXT: Invalid JSON text in column 'customer.info'".to_owned(),
                ));
            }
            Some(text.clone())
        }
        Some(other) => Some(other.to_string()),
    };
    Ok(CustomerUpdate { display_name, roles, info })
}

/// `PUT /customers/:email` `{display_name, roles, info}`: an OK packet.
#[utoipa::path(
    put,
    path = "/dnapi/admin/v1/customers/{email}",
    tag = "Admin API",
    params(("email" = String, Path, min_length = 1, description = "The customer's e-mail address.")),
    request_body(content = CustomerChange, content_type = "application/json"),
    responses(
        (status = 200, description = "An OK packet; `affectedRows` is 0 for an unknown address.", body = OkPacket),
        (status = 400, description = "`ER_BAD_NULL_ERROR: Column 'roles' cannot be null`, an `info` string that is no JSON, \
            or a body that is no JSON object or array.", body = GlobalError),
        (status = 403, description = "`Illegal access: Not allowed.`: admins only.", body = GlobalError),
        BodyFaults,
        (status = 404, description = "An empty path parameter: the path is another resource's (`Not Found: <url>`).", body = GlobalError),
        SessionFaults,
    ),
    security(("portal_jwt" = []))
)]
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
        .portal()
        .update_customer(&session, &path, &update)
        .await
        .map_err(|error| portal_error(state.error_status, error))?;
    Ok(ok_packet(matched))
}

/// `DELETE /customers/:email`: an OK packet; refused while other rows reference the customer.
#[utoipa::path(
    delete,
    path = "/dnapi/admin/v1/customers/{email}",
    tag = "Admin API",
    params(("email" = String, Path, min_length = 1, description = "The customer's e-mail address.")),
    responses(
        (status = 200, description = "An OK packet; `affectedRows` is 0 for an unknown address.", body = OkPacket),
        (status = 403, description = "`Illegal access: Not allowed.`: admins only.", body = GlobalError),
        (status = 409, description = "Other rows still reference the customer (`ER_ROW_IS_REFERENCED_2: …`).", body = GlobalError),
        (status = 404, description = "An empty path parameter: the path is another resource's (`Not Found: <url>`).", body = GlobalError),
        SessionFaults,
    ),
    security(("portal_jwt" = []))
)]
pub async fn delete(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let session = session(&state, &request).await?;
    let deleted = state
        .engine
        .portal()
        .delete_customer(&session, &path)
        .await
        .map_err(|error| portal_error(state.error_status, error))?;
    Ok(ok_packet(deleted))
}

/// `DELETE /customers/:email/twofa`: that user's two-factor login off; the original answers
/// with a session of that user.
#[utoipa::path(
    delete,
    path = "/dnapi/admin/v1/customers/{email}/twofa",
    tag = "Admin API",
    params(("email" = String, Path, min_length = 1, description = "The customer's e-mail address.")),
    responses(
        (status = 200, description = "That user's two-factor login is off; a session of that user, as in the original.", body = TokenAnswer),
        (status = 403, description = "`Illegal access: Not allowed.`: admins only.", body = GlobalError),
        (status = 404, description = "`Sorry, no customer with this email.`, or an empty path parameter: the path is another resource's (`Not Found: <url>`).", body = GlobalError),
        SessionFaults,
    ),
    security(("portal_jwt" = []))
)]
pub async fn reset_twofa(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let session = session(&state, &request).await?;
    let token = state
        .engine
        .portal()
        .reset_twofa(&session, &path)
        .await
        .map_err(|error| portal_error(state.error_status, error))?;
    Ok(token_answer(token))
}
