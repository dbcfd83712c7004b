//! Express routes case-insensitively; clients in the field send `/DNAPI/...` and get answers.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Uri;
use actix_web::middleware::Next;
use actix_web::HttpMessage as _;

/// The request's URI as the client sent it, for messages that echo it.
#[derive(Debug, Clone)]
pub struct OriginalUri(pub Uri);

/// Route on the lower-cased path; keep the query and the original URI as sent.
pub async fn lowercase_path(
    mut request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if request.path().bytes().any(|byte| byte.is_ascii_uppercase()) {
        let original = request.uri().clone();
        let lowered = original.path().to_ascii_lowercase();
        let path_and_query = match original.query() {
            Some(query) => format!("{lowered}?{query}"),
            None => lowered,
        };
        let mut parts = original.clone().into_parts();
        parts.path_and_query = path_and_query.parse().ok();
        if let Ok(uri) = Uri::from_parts(parts) {
            request.match_info_mut().get_mut().update(&uri);
            request.head_mut().uri = uri;
            request.extensions_mut().insert(OriginalUri(original));
        }
    }
    next.call(request).await
}
