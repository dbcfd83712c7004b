//! Express routed the original case-insensitively and ignored a trailing slash; clients in the
//! field send `/DNAPI/...` or `/tokens/` and get answers. One middleware makes a dncash path
//! canonical before routing. Only dncash paths: other protocols' paths are routed exactly as
//! sent (TokenOS storage keys, for one, are case-sensitive and contain `/`). A path that is not
//! dncash's, or already canonical (the common case), costs no allocation and no regex.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Uri;
use actix_web::middleware::Next;
use actix_web::HttpMessage as _;

/// The original's namespace: the first path segment of every dncash route.
const NAMESPACE: &str = "dnapi";

/// The request's URI as the client sent it, for messages that echo it.
#[derive(Debug, Clone)]
pub struct OriginalUri(pub Uri);

/// Whether `path` is in the original's namespace: its first non-empty segment is `dnapi` in any
/// case. Leading empty segments are skipped because the original's clients got `//dnapi/...`
/// (a base URL ending in `/` joined to `/dnapi/...`) answered, and it is folded like any
/// repeated slash; `/dnapix` or `/api/dnapi` are not dncash's.
pub fn is_dncash(path: &str) -> bool {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or_default();
    first.eq_ignore_ascii_case(NAMESPACE)
}

/// Route a dncash path on its canonical form (lower case, no repeated or trailing slash); keep
/// the query and the original URI as sent. Any other path passes untouched.
pub async fn canonical_path(
    mut request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if is_dncash(request.path()) && !is_canonical(request.path()) {
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
#[allow(clippy::unwrap_used)]
mod tests {
    use actix_web::test::{call_service, init_service, read_body, TestRequest};
    use actix_web::{web, App, HttpRequest, HttpResponse};

    use super::*;

    #[test]
    fn the_namespace_is_the_first_non_empty_segment_in_any_case() {
        for path in ["/dnapi", "/dnapi/", "/DNAPI/Token/V1", "/Dnapi/cash", "//dnapi/token", "///DNAPI"] {
            assert!(is_dncash(path), "{path}");
        }
        for path in ["/", "//", "", "/health", "/dnapix/token", "/api/dnapi", "/docs", "/openapi/dncash.json"] {
            assert!(!is_dncash(path), "{path}");
        }
    }

    #[test]
    fn canonical_dncash_paths_are_left_alone() {
        for path in ["/dnapi", "/dnapi/token/v1/tokens", "/dnapi/cash/v1/tokens/abc"] {
            assert!(is_canonical(path), "{path}");
            assert_eq!(canonicalize(path), path);
        }
    }

    #[test]
    fn case_repeated_and_trailing_slashes_are_folded() {
        for (sent, routed) in [
            ("/DNAPI/Token/V1/Tokens", "/dnapi/token/v1/tokens"),
            ("/dnapi/token/v1/tokens/", "/dnapi/token/v1/tokens"),
            ("/dnapi//token//v1/tokens//", "/dnapi/token/v1/tokens"),
            ("//dnapi/token/v1/tokens", "/dnapi/token/v1/tokens"),
            ("/DNAPI/", "/dnapi"),
        ] {
            assert!(!is_canonical(sent), "{sent}");
            assert_eq!(canonicalize(sent), routed, "{sent}");
        }
    }

    /// The path and query each handler saw, and whether the client's URI was kept beside them.
    async fn routed(request: HttpRequest) -> HttpResponse {
        let original = request.extensions().get::<OriginalUri>().map(|original| original.0.to_string());
        HttpResponse::Ok().body(format!("{} {}", request.uri(), original.unwrap_or_default()))
    }

    #[actix_web::test]
    async fn only_dncash_paths_are_rewritten_before_routing() {
        let app = init_service(
            App::new()
                .wrap(actix_web::middleware::from_fn(canonical_path))
                .route("/dnapi/token/v1/tokens", web::get().to(routed))
                .default_service(web::to(routed)),
        )
        .await;
        for (sent, seen) in [
            ("/DNAPI/Token/V1/Tokens/?x=A", "/dnapi/token/v1/tokens?x=A /DNAPI/Token/V1/Tokens/?x=A"),
            ("//dnapi//token/v1/tokens", "/dnapi/token/v1/tokens //dnapi//token/v1/tokens"),
            ("/dnapi/token/v1/tokens", "/dnapi/token/v1/tokens "),
            ("/Health/", "/Health/ "),
            ("//health", "//health "),
            ("/tokenos/v1/Keys/a//b/", "/tokenos/v1/Keys/a//b/ "),
            ("/openapi/DNCASH.json", "/openapi/DNCASH.json "),
        ] {
            let response = call_service(&app, TestRequest::get().uri(sent).to_request()).await;
            let body = read_body(response).await;
            assert_eq!(std::str::from_utf8(&body).unwrap(), seen, "{sent}");
        }
    }
}
