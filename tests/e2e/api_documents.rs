//! The published OpenAPI documents: served where promised, valid OpenAPI 3, and in step with
//! the routes. Every documented operation must reach a route whose pattern is the documented
//! path (the server's own request metrics name the pattern each request matched), and every
//! dncash path must allow exactly the documented methods (its `OPTIONS` answer, which the
//! route registration writes).

use std::collections::BTreeSet;

use awc::http::Method;
use serde_json::Value;

use crate::api::Body;
use crate::harness::{Backend, TestEnv};

/// Paths every reader of the dncash document looks for first.
const MAIN_DNCASH_PATHS: [&str; 8] = [
    "/dnapi/token/v1/devices",
    "/dnapi/token/v1/tokens",
    "/dnapi/token/v1/tokens/{uuid}",
    "/dnapi/cash/v1/tokens/{code}",
    "/dnapi/mobile/v1/trigger",
    "/dnapi/clearing/v1/tokens",
    "/dnapi/admin/v1/auth",
    "/dnapi/admin/v1/access",
];
const SYSTEM_PATHS: [&str; 3] = ["/health", "/metrics", "/openapi/{document}"];
const SECURITY_SCHEMES: [&str; 3] = ["dn_api_key", "dn_api_secret", "portal_jwt"];
/// A value for every path parameter: a uuid is a valid string for each of them.
const PATH_PARAMETER: &str = "00000000-0000-4000-8000-000000000000";
const OPERATION_METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

pub async fn every_document_is_served_and_every_operation_is_routed(backend: Backend) {
    let env = TestEnv::start_with(backend, &["--error-status", "4xx"]).await;

    let dncash = document(&env, "/openapi/dncash.json").await;
    let legacy = document(&env, "/dnapi/docs.json").await;
    assert_eq!(dncash, legacy, "/dnapi/docs.json must be the dncash document");
    let system = document(&env, "/openapi/system.json").await;
    for path in MAIN_DNCASH_PATHS {
        assert!(dncash["paths"].get(path).is_some(), "the dncash document lacks {path}");
    }
    for path in SYSTEM_PATHS {
        assert!(system["paths"].get(path).is_some(), "the system document lacks {path}");
    }
    for scheme in SECURITY_SCHEMES {
        assert!(
            dncash["components"]["securitySchemes"].get(scheme).is_some(),
            "the dncash document lacks the security scheme {scheme}"
        );
    }

    // Swagger UI, from the binary, listing both documents.
    let page = env.api.get_anonymous("/docs").await;
    page.assert_status(200);
    assert!(page.text.contains("swagger-ui"), "/docs is no Swagger UI page: {}", page.describe());
    let initializer = env.api.get_anonymous("/docs/swagger-initializer.js").await;
    initializer.assert_status(200);
    for url in ["/openapi/dncash.json", "/openapi/system.json"] {
        assert!(initializer.text.contains(url), "Swagger UI does not list {url}:\n{}", initializer.text);
    }
    // The original's spellings of its documentation paths are folded like every `/dnapi` path;
    // `/docs/` is Swagger UI's directory, served as sent.
    for path in ["/dnapi/docs", "/DNAPI/Docs/", "/docs/"] {
        let page = env.api.get_anonymous(path).await;
        page.assert_status(200);
        assert!(page.text.contains("swagger-ui"), "{path} is no Swagger UI page: {}", page.describe());
    }
    assert_eq!(document(&env, "/DNAPI/Docs.json/").await, dncash, "/DNAPI/Docs.json/ must be the dncash document");

    // Every documented operation, without credentials: each must match its documented route.
    let mut documented = BTreeSet::new();
    for document in [&dncash, &system] {
        for (path, method) in operations(document) {
            let concrete = fill_path_parameters(&path);
            env.api.request(method_of(&method), &concrete, None, Body::None).await;
            documented.insert((path, method.to_ascii_uppercase()));
        }
    }
    let metrics = env.api.get_anonymous("/metrics").await;
    metrics.assert_status(200);
    let routed = routed_operations(&metrics.text);
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(unrouted.is_empty(), "documented operations that reach no route of that pattern: {unrouted:?}");

    // Each dncash path allows exactly its documented methods (HEAD comes with GET).
    for (path, item) in dncash["paths"].as_object().expect("paths").iter() {
        let documented: BTreeSet<String> = OPERATION_METHODS
            .iter()
            .filter(|method| item.get(**method).is_some())
            .map(|method| method.to_ascii_uppercase())
            .collect();
        let reply = env
            .api
            .request_with_headers(
                Method::OPTIONS,
                &fill_path_parameters(path),
                &[("Access-Control-Request-Headers", "authorization")],
                Body::None,
            )
            .await;
        reply.assert_status(200);
        let allowed: BTreeSet<String> = reply
            .header("allow")
            .unwrap_or_default()
            .split(',')
            .map(|method| method.trim().to_owned())
            .filter(|method| !method.is_empty() && method != "HEAD" && method != "OPTIONS")
            .collect();
        assert_eq!(allowed, documented, "{path}: methods allowed vs documented");
    }
}

/// A document from the server, checked to be OpenAPI 3 with paths.
async fn document(env: &TestEnv, path: &str) -> Value {
    let reply = env.api.get_anonymous(path).await;
    reply.assert_status(200);
    let document = reply.json.clone();
    let version = document["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3."), "{path} is no OpenAPI 3 document (openapi: {version:?})");
    assert!(document["info"]["title"].is_string(), "{path} has no info.title");
    assert!(document["paths"].as_object().is_some_and(|paths| !paths.is_empty()), "{path} documents no paths");
    document
}

/// Every (path, method) a document describes.
fn operations(document: &Value) -> Vec<(String, String)> {
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths").iter() {
        for method in OPERATION_METHODS {
            if item.get(method).is_some() {
                operations.push((path.clone(), method.to_owned()));
            }
        }
    }
    operations
}

fn fill_path_parameters(path: &str) -> String {
    let mut filled = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        filled.push_str(&rest[..start]);
        filled.push_str(PATH_PARAMETER);
        let end = rest[start..].find('}').map_or(rest.len(), |end| start + end + 1);
        rest = &rest[end..];
    }
    filled.push_str(rest);
    filled
}

fn method_of(name: &str) -> Method {
    Method::from_bytes(name.to_ascii_uppercase().as_bytes()).expect("an HTTP method")
}

/// (route pattern, method) of every request the server counted, with regex constraints left
/// out of the pattern (`/docs/{file:.*}` is `/docs/{file}`).
fn routed_operations(metrics: &str) -> BTreeSet<(String, String)> {
    metrics
        .lines()
        .filter(|line| line.starts_with("cashgrid_http_requests_total{"))
        .filter_map(|line| Some((strip_constraints(label(line, "route")?), label(line, "method")?.to_owned())))
        .collect()
}

fn label<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!("{name}=\""))? + name.len() + 2;
    let end = line[start..].find('"')? + start;
    Some(&line[start..end])
}

fn strip_constraints(pattern: &str) -> String {
    let mut stripped = String::with_capacity(pattern.len());
    let (mut in_parameter, mut in_constraint) = (false, false);
    for character in pattern.chars() {
        match character {
            '{' => {
                in_parameter = true;
                stripped.push(character);
            }
            '}' => {
                (in_parameter, in_constraint) = (false, false);
                stripped.push(character);
            }
            ':' if in_parameter => in_constraint = true,
            _ if in_constraint => {}
            _ => stripped.push(character),
        }
    }
    stripped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_parameters_are_filled_and_constraints_stripped() {
        assert_eq!(fill_path_parameters("/a/{id}/b/{x}"), format!("/a/{PATH_PARAMETER}/b/{PATH_PARAMETER}"));
        assert_eq!(fill_path_parameters("/health"), "/health");
        assert_eq!(strip_constraints("/docs/{file:.*}"), "/docs/{file}");
        assert_eq!(strip_constraints("/dnapi/token/v1/tokens/{uuid}"), "/dnapi/token/v1/tokens/{uuid}");
    }
}
