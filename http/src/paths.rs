//! Express routes case-insensitively and ignores a trailing slash; clients in the field send
//! `/DNAPI/...` or `/tokens/` and get answers. One middleware makes the path canonical, and does
//! no work at all for a path that already is (the common case: no allocation, no regex).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Uri;
use actix_web::middleware::Next;
use actix_web::HttpMessage as _;

/// The request's URI as the client sent it, for messages that echo it.
#[derive(Debug, Clone)]
pub struct OriginalUri(pub Uri);

/// Route on the canonical path (lower case, no repeated or trailing slash); keep the query and
/// the original URI as sent.
pub async fn canonical_path(
    mut request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if !is_canonical(request.path()) {
        let original = request.uri().clone();
        let canonical = canonicalize(original.path());
        let path_and_query = match original.query() {
            Some(query) => format!("{canonical}?{query}"),
            None => canonical,
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

fn is_canonical(path: &str) -> bool {
    let bytes = path.as_bytes();
    !bytes.iter().any(u8::is_ascii_uppercase)
        && !bytes.windows(2).any(|pair| pair == b"//")
        && (bytes.len() <= 1 || bytes.last() != Some(&b'/'))
}

fn canonicalize(path: &str) -> String {
    let mut canonical = String::with_capacity(path.len() + 1);
    for segment in path.split('/').filter(|segment| !segment.is_empty()) {
        canonical.push('/');
        canonical.push_str(&segment.to_ascii_lowercase());
    }
    if canonical.is_empty() {
        canonical.push('/');
    }
    canonical
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_paths_are_left_alone() {
        for path in ["/", "/api/tokens", "/dnapi/cash/v1/tokens/abc", "/metrics"] {
            assert!(is_canonical(path), "{path}");
            assert_eq!(canonicalize(path), path);
        }
    }

    #[test]
    fn case_repeated_and_trailing_slashes_are_folded() {
        for (sent, routed) in [
            ("/DNAPI/Token/V1/Tokens", "/dnapi/token/v1/tokens"),
            ("/api/tokens/", "/api/tokens"),
            ("//api//tokens//", "/api/tokens"),
            ("//", "/"),
        ] {
            assert!(!is_canonical(sent), "{sent}");
            assert_eq!(canonicalize(sent), routed, "{sent}");
        }
    }
}
