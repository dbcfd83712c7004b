//! DN-API-KEY / DN-API-SECRET authentication for the Token, Cash and Clearing APIs (the Ledger
//! API reads the same headers with [`key_pair`]).

use actix_web::HttpRequest;
use cashgrid_actors::store::{Customer, Scope};

use crate::error::ApiError;
use crate::AppState;

const KEY_HEADER: &str = "dn-api-key";
const SECRET_HEADER: &str = "dn-api-secret";

/// The API key and secret the request's headers carry, when it carries both.
pub fn key_pair(request: &HttpRequest) -> Option<(&str, &str)> {
    let header = |name| request.headers().get(name).and_then(|value| value.to_str().ok());
    Some((header(KEY_HEADER)?, header(SECRET_HEADER)?))
}

/// The customer whose credentials of `scope` the request carries; 401 for anything else.
pub async fn authenticate(state: &AppState, request: &HttpRequest, scope: Scope) -> Result<Customer, ApiError> {
    let Some((key, secret)) = key_pair(request) else {
        return Err(ApiError::Credentials);
    };
    match state.engine.access().authenticate(key, secret, scope).await {
        Ok(Some(customer)) => Ok(customer),
        Ok(None) => Err(ApiError::Credentials),
        Err(error) => Err(ApiError::from_fault(error)),
    }
}
