//! Text the store cannot hold is refused at the edge: PostgreSQL refuses NUL (U+0000) in text,
//! and a write it refuses must never reach the group commit (where it would fail other
//! customers' writes of the same batch). A request whose path or query carries `%00` gets a
//! 400 in the dncash format before any handler runs; bodies are checked as they are parsed
//! (`body::read_json`).

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::ResponseError as _;

use crate::body::NUL_REFUSED;
use crate::error::ApiError;

pub async fn refuse_nul(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let uri = request.uri();
    if has_encoded_nul(uri.path()) || uri.query().is_some_and(has_encoded_nul) {
        let response = ApiError::bad_request(NUL_REFUSED).error_response();
        return Ok(request.into_response(response).map_into_right_body());
    }
    next.call(request).await.map(ServiceResponse::map_into_left_body)
}

/// `%00` in any letter case; a raw NUL cannot reach here (the HTTP parser refuses it).
pub(crate) fn has_encoded_nul(text: &str) -> bool {
    text.as_bytes().windows(3).any(|window| window == b"%00")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encoded_nul_is_found_anywhere() {
        assert!(has_encoded_nul("/dnapi/cash/v1/tokens/%00"));
        assert!(has_encoded_nul("filter=a%00b"));
        assert!(!has_encoded_nul("/dnapi/cash/v1/tokens/%20%0A"));
        assert!(!has_encoded_nul("amount=100"));
    }
}
