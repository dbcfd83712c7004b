//! The caller's settlement accounts (§5.8), with the original's default rule (applied by the
//! store after every write). Unlike the original, an account is read and changed by its owner
//! only, and `customer_id` in a body is ignored.

use actix_web::{web, HttpRequest, HttpResponse};
use cashgrid_actors::engine::portal::AccountPatch;
use cashgrid_actors::store::NewAccount;
use serde_json::Value;
use utoipa::{OpenApi, ToSchema};

use super::{
    column_null, column_too_long, column_truncated, empty_ok, invalid, portal_error, row_id, session, unknown_column,
};
use crate::body::read_json;
use crate::dncash::token_api::query_map;
use crate::dncash::views::AccountRow;
use crate::error::{ApiError, GlobalError};
use crate::openapi::schemas::{BodyFaults, SessionFaults};
use crate::{AppState, ErrorStatus};

/// The caller's settlement accounts.
#[derive(OpenApi)]
#[openapi(paths(create, list, get, update, delete))]
pub(super) struct Document;

/// An account body: `value` and `type` are needed to create one; `PUT` also needs `id` (the
/// path's). Other keys are refused.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the body in the documents; `fields` reads it field by field.
struct AccountBody {
    /// The row id; `PUT` only, and it must be the path's.
    #[schema(required = false)]
    id: Option<i64>,
    /// Ignored: an account never moves to another customer.
    #[schema(required = false)]
    customer_id: Option<i64>,
    #[schema(required = false, max_length = 80)]
    value: Option<String>,
    /// `BANKACCOUNT`, `CREDITCARD` or `CRYPTOWALLET` (any case).
    #[schema(rename = "type", required = false)]
    account_type: Option<String>,
    /// 1 makes it the default account.
    #[schema(value_type = Option<Value>, required = false)]
    default: Option<Value>,
    #[schema(required = false, max_length = 40)]
    symbol: Option<String>,
    #[schema(required = false, max_length = 80)]
    refname: Option<String>,
}

const ACCOUNT_TYPES: [&str; 3] = ["BANKACCOUNT", "CREDITCARD", "CRYPTOWALLET"];
const VALUE_LENGTH_MAX: usize = 80;
const SYMBOL_LENGTH_MAX: usize = 40;
const REFNAME_LENGTH_MAX: usize = 80;
/// Keys an account body may carry: the columns. `id` and `customer_id` are never written.
const ACCOUNT_KEYS: [&str; 7] = ["id", "customer_id", "value", "type", "default", "symbol", "refname"];

/// The account fields a body gives; `None` where absent.
struct Fields {
    value: Option<String>,
    account_type: Option<String>,
    default: Option<i32>,
    make_default: bool,
    symbol: Option<Option<String>>,
    refname: Option<Option<String>>,
}

fn text(mode: ErrorStatus, body: &Value, name: &'static str, max: usize) -> Result<Option<Option<String>>, ApiError> {
    let text = match body.get(name) {
        None => return Ok(None),
        Some(Value::Null) => return Ok(Some(None)),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    };
    if text.chars().count() > max {
        return Err(invalid(mode, column_too_long(name)));
    }
    Ok(Some(Some(text)))
}

fn fields(mode: ErrorStatus, body: &Value) -> Result<Fields, ApiError> {
    if let Value::Object(map) = body {
        if let Some(key) = map.keys().find(|key| !ACCOUNT_KEYS.contains(&key.as_str())) {
            return Err(invalid(mode, unknown_column(key)));
        }
    }
    let value = match text(mode, body, "value", VALUE_LENGTH_MAX)? {
        None => None,
        Some(None) => return Err(invalid(mode, column_null("value"))),
        Some(Some(value)) => Some(value),
    };
    let account_type = match body.get("type") {
        None => None,
        Some(Value::String(text)) if ACCOUNT_TYPES.contains(&text.to_ascii_uppercase().as_str()) => {
            Some(text.to_ascii_uppercase())
        }
        Some(Value::Null) => return Err(invalid(mode, column_null("type"))),
        Some(_) => return Err(invalid(mode, column_truncated("type"))),
    };
    let default = match body.get("default") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(flag)) => Some(i32::from(*flag)),
        Some(Value::Number(number)) => Some(i32::from(number.as_f64().is_some_and(|value| value != 0.0))),
        Some(Value::String(text)) => Some(i32::from(text.trim().parse::<f64>().is_ok_and(|value| value != 0.0))),
        Some(_) => return Err(invalid(mode, column_truncated("default"))),
    };
    // The original switches the default only for the number 1 (`=== 1`).
    let make_default = body.get("default").and_then(Value::as_f64) == Some(1.0);
    Ok(Fields {
        value,
        account_type,
        default,
        make_default,
        symbol: text(mode, body, "symbol", SYMBOL_LENGTH_MAX)?,
        refname: text(mode, body, "refname", REFNAME_LENGTH_MAX)?,
    })
}

/// `POST /accounts` `{value,type,default,symbol,refname}`: 200 with an empty body.
#[utoipa::path(
    post,
    path = "/dnapi/admin/v1/accounts",
    tag = "Admin API",
    request_body(content = AccountBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Created; an empty body, as in the original."),
        (status = 400, description = "A missing `value` or `type` (`ER_BAD_NULL_ERROR: …`), an unknown type or key, a field \
            too long, or a body that is no JSON object or array.", body = GlobalError),
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
    let mode = state.error_status;
    let fields = fields(mode, &body)?;
    let account = NewAccount {
        value: fields.value.ok_or_else(|| invalid(mode, column_null("value")))?,
        account_type: fields.account_type.ok_or_else(|| invalid(mode, column_null("type")))?,
        default: fields.default == Some(1),
        symbol: fields.symbol.flatten(),
        refname: fields.refname.flatten(),
    };
    state.engine.portal().create_account(&session, &account).await.map_err(|error| portal_error(mode, error))?;
    Ok(empty_ok())
}

/// `GET /accounts?default=0|1`: the caller's accounts.
#[utoipa::path(
    get,
    path = "/dnapi/admin/v1/accounts",
    tag = "Admin API",
    params(("default" = Option<String>, Query, description = "`1`: only the default account; anything else: only the others.")),
    responses((status = 200, description = "The caller's accounts.", body = Vec<AccountRow>), SessionFaults),
    security(("portal_jwt" = []))
)]
pub async fn list(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let session = session(&state, &request).await?;
    // MySQL compared the text with the 0/1 column: anything but a non-zero number is 0.
    let default =
        query_map(&request).get("default").map(|text| text.trim().parse::<f64>().is_ok_and(|value| value != 0.0));
    let accounts = state
        .engine
        .portal()
        .list_accounts(&session, default)
        .await
        .map_err(|error| portal_error(state.error_status, error))?;
    Ok(crate::json_ok(accounts.iter().map(AccountRow::of).collect::<Vec<_>>()))
}

/// `GET /accounts/:id`: the caller's account, or an empty body.
#[utoipa::path(
    get,
    path = "/dnapi/admin/v1/accounts/{id}",
    tag = "Admin API",
    params(("id" = String, Path, min_length = 1, description = "The account's row id.")),
    responses(
        (status = 200, description = "The account (`Account`), or an empty body when the caller has no such account."),
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
    let Some(id) = row_id(&path) else {
        return Ok(empty_ok());
    };
    match state.engine.portal().account(&session, id).await.map_err(|error| portal_error(state.error_status, error))? {
        Some(account) => Ok(crate::json_ok(AccountRow::of(&account))),
        None => Ok(empty_ok()),
    }
}

/// `PUT /accounts/:id` with the account, whose `id` must be the path's: 200, empty body.
#[utoipa::path(
    put,
    path = "/dnapi/admin/v1/accounts/{id}",
    tag = "Admin API",
    params(("id" = String, Path, min_length = 1, description = "The account's row id.")),
    request_body(content = AccountBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Changed (or no such account of the caller's); an empty body."),
        (status = 400, description = "`Cannot update account. ID mismatch!`, a null `value` or `type`, an unknown type or key, \
            a field too long, or a body that is no JSON object or array.", body = GlobalError),
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
    let mode = state.error_status;
    // The original compares loosely (`!=`): 4 and "4" are the same id.
    let body_id = match body.get("id") {
        Some(Value::Number(number)) => number.to_string(),
        Some(Value::String(text)) => text.trim().to_owned(),
        _ => String::new(),
    };
    if body_id.is_empty() || body_id != path.trim() {
        return Err(invalid(mode, "Cannot update account. ID mismatch!".to_owned()));
    }
    let fields = fields(mode, &body)?;
    let patch = AccountPatch {
        value: fields.value,
        account_type: fields.account_type,
        default: fields.default,
        make_default: fields.make_default,
        symbol: fields.symbol,
        refname: fields.refname,
    };
    if let Some(id) = row_id(&path) {
        state.engine.portal().update_account(&session, id, patch).await.map_err(|error| portal_error(mode, error))?;
    }
    Ok(empty_ok())
}

/// `DELETE /accounts/:id`: 200, empty body.
#[utoipa::path(
    delete,
    path = "/dnapi/admin/v1/accounts/{id}",
    tag = "Admin API",
    params(("id" = String, Path, min_length = 1, description = "The account's row id.")),
    responses(
        (status = 200, description = "Deleted (or no such account of the caller's); an empty body."),
        (status = 409, description = "Other rows still reference the account (`ER_ROW_IS_REFERENCED_2: …`).", body = GlobalError),
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
    if let Some(id) = row_id(&path) {
        state
            .engine
            .portal()
            .delete_account(&session, id)
            .await
            .map_err(|error| portal_error(state.error_status, error))?;
    }
    Ok(empty_ok())
}
