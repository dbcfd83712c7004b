//! The caller's devices: list, rename or retype, delete.

use actix_web::{web, HttpRequest, HttpResponse};
use cashgrid_actors::domain::DeviceType;
use serde_json::Value;
use utoipa::{OpenApi, ToSchema};

use super::{column_too_long, column_truncated, invalid, ok_packet, portal_error, row_id, session, OkPacket};
use crate::body::read_json;
use crate::dncash::token_api::REFNAME_LENGTH_MAX;
use crate::dncash::views::DeviceRow;
use crate::error::{ApiError, GlobalError};
use crate::openapi::schemas::{BodyFaults, DeviceTypeName, SessionFaults};
use crate::{AppState, ErrorStatus};

/// The caller's devices.
#[derive(OpenApi)]
#[openapi(paths(list, update, delete))]
pub(super) struct Document;

/// A device's new type or refname; other keys are ignored.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the body in the documents; `device_change` reads it field by field.
struct DeviceChange_ {
    #[schema(rename = "type", value_type = Option<DeviceTypeName>, required = false)]
    device_type: Option<String>,
    /// Null clears it.
    #[schema(required = false, max_length = 36)]
    refname: Option<String>,
}

#[utoipa::path(
    get,
    path = "/dnapi/admin/v1/devices",
    tag = "Admin API",
    responses((status = 200, description = "The caller's devices.", body = Vec<DeviceRow>), SessionFaults),
    security(("portal_jwt" = []))
)]
pub async fn list(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let session = session(&state, &request).await?;
    let devices = state.engine.devices().list(session.id).await.map_err(ApiError::from_fault)?;
    Ok(crate::json_ok(devices.iter().map(DeviceRow::of).collect::<Vec<_>>()))
}

type DeviceChange = (Option<DeviceType>, Option<Option<String>>);

/// Only `type` and `refname` are applied; a null `refname` clears it.
fn device_change(mode: ErrorStatus, body: &Value) -> Result<DeviceChange, ApiError> {
    let device_type = match body.get("type") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => {
            Some(DeviceType::parse(text).ok_or_else(|| invalid(mode, column_truncated("type")))?)
        }
        Some(_) => return Err(invalid(mode, column_truncated("type"))),
    };
    let refname = match body.get("refname") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(text)) if text.chars().count() > REFNAME_LENGTH_MAX => {
            return Err(invalid(mode, column_too_long("refname")))
        }
        Some(Value::String(text)) => Some(Some(text.clone())),
        Some(other) => Some(Some(other.to_string())),
    };
    Ok((device_type, refname))
}

/// `PUT /devices/:id`: a bare number, the rows matched.
#[utoipa::path(
    put,
    path = "/dnapi/admin/v1/devices/{id}",
    tag = "Admin API",
    params(("id" = String, Path, min_length = 1, description = "The device's row id.")),
    request_body(content = DeviceChange_, content_type = "application/json"),
    responses(
        (status = 200, description = "The number of rows matched (0 or 1), a bare JSON number.", content_type = "application/json", body = u64),
        (status = 400, description = "`Nothing to update: give 'type' or 'refname'.`, an unknown type \
            (`WARN_DATA_TRUNCATED: …`), a refname over 36 characters, or a body that is no JSON object or array.", body = GlobalError),
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
    let (device_type, refname) = device_change(state.error_status, &body)?;
    let matched = match row_id(&path) {
        Some(id) => state
            .engine
            .portal()
            .update_device(&session, id, device_type, refname)
            .await
            .map_err(|error| portal_error(state.error_status, error))?,
        None if device_type.is_none() && refname.is_none() => {
            return Err(portal_error(
                state.error_status,
                cashgrid_actors::engine::portal::PortalRejection::NothingToUpdate.into(),
            ))
        }
        None => 0,
    };
    Ok(crate::json_ok(matched))
}

/// `DELETE /devices/:id`: an OK packet; refused while tokens reference the device.
#[utoipa::path(
    delete,
    path = "/dnapi/admin/v1/devices/{id}",
    tag = "Admin API",
    params(("id" = String, Path, min_length = 1, description = "The device's row id.")),
    responses(
        (status = 200, description = "An OK packet.", body = OkPacket),
        (status = 409, description = "Tokens still reference the device (`ER_ROW_IS_REFERENCED_2: …`).", body = GlobalError),
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
    let deleted = match row_id(&path) {
        Some(id) => state
            .engine
            .portal()
            .delete_device(&session, id)
            .await
            .map_err(|error| portal_error(state.error_status, error))?,
        None => 0,
    };
    Ok(ok_packet(deleted))
}
