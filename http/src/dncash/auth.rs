//! DN-API-KEY / DN-API-SECRET authentication for the Token, Cash and Clearing APIs.

use actix_web::HttpRequest;
use cashgrid_actors::store::{Customer, Scope};

use crate::error::ApiError;
use crate::AppState;

const KEY_HEADER: &str = "dn-api-key";
const SECRET_HEADER: &str = "dn-api-secret";

/// The customer whose credentials of `scope` the request carries; 401 for anything else.
pub async fn authenticate(state: &AppState, request: &HttpRequest, scope: Scope) -> Result<Customer, ApiError> {
    let header = |name| request.headers().get(name).and_then(|value| value.to_str().ok());
    let (Some(key), Some(secret)) = (header(KEY_HEADER), header(SECRET_HEADER)) else {
        return Err(ApiError::Credentials);
    };
    match state.engine.access().authenticate(key, secret, scope).await {
        Ok(Some(customer)) => Ok(customer),
        Ok(None) => Err(ApiError::Credentials),
        Err(error) => Err(ApiError::from_fault(error)),
    }
}
