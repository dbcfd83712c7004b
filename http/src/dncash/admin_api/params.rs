//! The caller's parameters (§11): JSON values by key. Any write turns a flag on (the body is
//! an object or an array); DELETE turns it off. Keys keep the case the client sent.

use actix_web::{web, HttpRequest, HttpResponse};
use utoipa::OpenApi;

use super::{column_too_long, invalid, ok_packet, original_last_segment, portal_error, session, OkPacket};
use crate::body::read_json;
use crate::error::{ApiError, GlobalError};
use crate::openapi::schemas::{BodyFaults, SessionFaults};
use crate::{AppState, ErrorStatus};

/// The caller's parameters.
#[derive(OpenApi)]
#[openapi(paths(get, set, delete))]
pub(super) struct Document;

/// Longest parameter key (the original's column).
const PKEY_LENGTH_MAX: usize = 45;

/// The key as sent: paths are routed case-insensitively, but `USE_PLAIN_CODES` stays upper case.
fn pkey(mode: ErrorStatus, request: &HttpRequest, routed: &str) -> Result<String, ApiError> {
    let key = original_last_segment(request, routed);
    if key.chars().count() > PKEY_LENGTH_MAX {
        return Err(invalid(mode, column_too_long("pkey")));
    }
    Ok(key)
}

/// `GET /params/:pkey`: the stored value, or `null`.
#[utoipa::path(
    get,
    path = "/dnapi/admin/v1/params/{pkey}",
    tag = "Admin API",
    params(("pkey" = String, Path, min_length = 1, description = "The parameter's key, e.g. `USE_PLAIN_CODES` (at most 45 characters).")),
    responses(
        (status = 200, description = "The stored JSON value, or `null`.", body = Value),
        (status = 400, description = "A key over 45 characters.", body = GlobalError),
        (status = 404, description = "An empty path parameter: the path is another resource's (`Not Found: <url>`).", body = GlobalError),
        SessionFaults,
    ),
    security(("portal_jwt" = []))
)]
pub async fn get(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let session = session(&state, &request).await?;
    let key = pkey(state.error_status, &request, &path)?;
    let value = state
        .engine
        .portal()
        .param_value(&session, &key)
        .await
        .map_err(|error| portal_error(state.error_status, error))?;
    Ok(crate::json_ok(value))
}

/// `PUT /params/:pkey` with a JSON object or array (`{}` for any other body): an OK packet.
#[utoipa::path(
    put,
    path = "/dnapi/admin/v1/params/{pkey}",
    tag = "Admin API",
    params(("pkey" = String, Path, min_length = 1, description = "The parameter's key (at most 45 characters).")),
    request_body(content = Value, content_type = "application/json", description = "A JSON object or array (any other body counts as `{}`): any write turns a flag on."),
    responses(
        (status = 200, description = "An OK packet (`affectedRows` is always 1).", body = OkPacket),
        (status = 400, description = "A key over 45 characters, or a body that is no JSON object or array.", body = GlobalError),
        BodyFaults,
        (status = 404, description = "An empty path parameter: the path is another resource's (`Not Found: <url>`).", body = GlobalError),
        SessionFaults,
    ),
    security(("portal_jwt" = []))
)]
pub async fn set(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let session = session(&state, &request).await?;
    let body = read_json(&request, payload).await?;
    let key = pkey(state.error_status, &request, &path)?;
    state
        .engine
        .portal()
        .set_param(&session, &key, &body)
        .await
        .map_err(|error| portal_error(state.error_status, error))?;
    Ok(ok_packet(1))
}

/// `DELETE /params/:pkey`: an OK packet.
#[utoipa::path(
    delete,
    path = "/dnapi/admin/v1/params/{pkey}",
    tag = "Admin API",
    params(("pkey" = String, Path, min_length = 1, description = "The parameter's key (at most 45 characters).")),
    responses(
        (status = 200, description = "An OK packet: the flag is off.", body = OkPacket),
        (status = 400, description = "A key over 45 characters.", body = GlobalError),
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
    let key = pkey(state.error_status, &request, &path)?;
    let deleted = state
        .engine
        .portal()
        .remove_param(&session, &key)
        .await
        .map_err(|error| portal_error(state.error_status, error))?;
    Ok(ok_packet(deleted))
}
