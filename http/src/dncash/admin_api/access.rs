//! The caller's API credentials: create, list by scope, reveal the secret with the password,
//! delete.

use actix_web::{web, HttpRequest, HttpResponse};
use cashgrid_actors::store::Access;
use serde::Serialize;
use serde_json::Value;
use utoipa::{OpenApi, ToSchema};

use super::{empty_ok, ok_packet, portal_error, row_id, session, OkPacket};
use crate::body::read_json;
use crate::dncash::token_api::query_map;
use crate::error::{ApiError, GlobalError};
use crate::openapi::schemas::{BodyFaults, ScopeName, SessionFaults};
use crate::{time, AppState};

/// The caller's API credentials.
#[derive(OpenApi)]
#[openapi(paths(create, list, reveal, delete))]
pub(super) struct Document;

/// `POST /access`.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the body in the documents; `create` reads it field by field.
struct NewAccess {
    #[schema(value_type = ScopeName)]
    scope: String,
}

/// `PUT /access/:id`: the caller's password, to see the secret.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the body in the documents; `reveal` reads it field by field.
struct RevealAccess {
    password: String,
}

/// A `customer_access` row (§5.2). `apisecret` appears only when revealed; `refname` and
/// `info` are always null, as the original never set them.
#[derive(Serialize, ToSchema)]
#[schema(as = AccessRow)]
struct AccessJson<'a> {
    id: i64,
    customer_id: i64,
    #[serde(serialize_with = "time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    created: i64,
    #[schema(value_type = ScopeName)]
    scope: &'static str,
    #[schema(value_type = String)]
    apikey: &'a str,
    /// Only in `PUT /access/{id}`'s answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    apisecret: Option<Option<&'a str>>,
    /// Always null.
    #[schema(required = true)]
    refname: Option<String>,
    /// Always null.
    #[schema(required = true)]
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
#[utoipa::path(
    post,
    path = "/dnapi/admin/v1/access",
    tag = "Admin API",
    request_body(content = NewAccess, content_type = "application/json"),
    responses(
        (status = 200, description = "The new credentials, without the secret (`PUT /access/{id}` reveals it).", body = AccessJson),
        (status = 400, description = "`Unknown scope: <scope>`, or a body that is no JSON object or array.", body = GlobalError),
        BodyFaults,
        SessionFaults,
    ),
    security(("portal_jwt" = []))
)]
pub async fn create(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let session = session(&state, &request).await?;
    let body = read_json(&request, payload).await?;
    let scope = match body.get("scope") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.clone()),
        Some(other) => Some(other.to_string()),
    };
    let access = state
        .engine
        .portal()
        .create_access(&session, scope.as_deref())
        .await
        .map_err(|error| portal_error(state.error_status, error))?;
    Ok(crate::json_ok(AccessJson::of(&access, None)))
}

/// `GET /access?scope=`: the caller's credentials of that scope (none without one).
#[utoipa::path(
    get,
    path = "/dnapi/admin/v1/access",
    tag = "Admin API",
    params(("scope" = Option<ScopeName>, Query, description = "Without a scope the list is empty, as in the original.")),
    responses((status = 200, description = "The caller's credentials of that scope, without secrets.", body = Vec<AccessJson>), SessionFaults),
    security(("portal_jwt" = []))
)]
pub async fn list(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let session = session(&state, &request).await?;
    let query = query_map(&request);
    let records = state
        .engine
        .portal()
        .list_access(&session, query.get("scope").map(String::as_str))
        .await
        .map_err(|error| portal_error(state.error_status, error))?;
    Ok(crate::json_ok(records.iter().map(|access| AccessJson::of(access, None)).collect::<Vec<_>>()))
}

/// `PUT /access/:id` `{"password"}`: the row with its secret; empty when it is not the caller's.
#[utoipa::path(
    put,
    path = "/dnapi/admin/v1/access/{id}",
    tag = "Admin API",
    params(("id" = String, Path, min_length = 1, description = "The credentials' row id.")),
    request_body(content = RevealAccess, content_type = "application/json"),
    responses(
        (status = 200, description = "The row with `apisecret` (`AccessRow`), or an empty body when the row is not the caller's."),
        (status = 400, description = "The body is no JSON object or array.", body = GlobalError),
        (status = 403, description = "`Sorry, wrong password` (counts towards the login brake).", body = GlobalError),
        BodyFaults,
        (status = 404, description = "An empty path parameter: the path is another resource's (`Not Found: <url>`).", body = GlobalError),
        SessionFaults,
    ),
    security(("portal_jwt" = []))
)]
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
        .portal()
        .reveal_access(&session, row_id(&path).unwrap_or(0), password)
        .await
        .map_err(|error| portal_error(state.error_status, error))?;
    Ok(match revealed {
        Some(revealed) => crate::json_ok(AccessJson::of(&revealed.access, Some(revealed.apisecret.as_deref()))),
        None => empty_ok(),
    })
}

/// `DELETE /access/:id`: an OK packet; the key stops authenticating at once on this node.
#[utoipa::path(
    delete,
    path = "/dnapi/admin/v1/access/{id}",
    tag = "Admin API",
    params(("id" = String, Path, min_length = 1, description = "The credentials' row id.")),
    responses(
        (status = 200, description = "An OK packet; the key stops authenticating.", body = OkPacket),
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
            .delete_access(&session, id)
            .await
            .map_err(|error| portal_error(state.error_status, error))?,
        None => 0,
    };
    Ok(ok_packet(deleted))
}
