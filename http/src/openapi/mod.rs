//! The OpenAPI 3 documents of every HTTP API cashgrid serves, generated from the handlers'
//! `#[utoipa::path]` annotations and the view types' `ToSchema` derives, and the pages that
//! publish them:
//!
//! | path | what |
//! |---|---|
//! | `/openapi/dncash.json` | the dncash-io APIs (Token, Cash, Mobile, Clearing, Admin) |
//! | `/dnapi/docs.json` | the same document, where the original served its Swagger |
//! | `/openapi/ledger.json` | the Ledger API (`/ledger/v1`) |
//! | `/openapi/ccc.json` | the Crypto Capital API's operator side (`/ccc/v1/operator`) |
//! | `/openapi/system.json` | health, metrics and these documents |
//! | `/docs` | Swagger UI listing every document (served from the binary: no internet needed) |
//!
//! A new protocol adds its document to [`DOCUMENTS`] and joins `scripts/check-contracts.sh`.

pub mod schemas;

use std::sync::{Arc, OnceLock};

use actix_web::http::header::{self, ContentType};
use actix_web::{web, HttpResponse};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, RefOr};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::{Config, Url};

use crate::error::{ApiError, GlobalError, TextError};

/// Security scheme names. The handlers' `security(...)` attributes must spell them as literals
/// (the macro takes no constants); a unit test checks that every name they use exists here.
pub const API_KEY: &str = "dn_api_key";
pub const API_SECRET: &str = "dn_api_secret";
pub const SESSION: &str = "portal_jwt";

/// Every published document: its name in Swagger UI and its path.
pub const DOCUMENTS: [(&str, &str); 4] = [
    ("dncash", "/openapi/dncash.json"),
    ("ledger", "/openapi/ledger.json"),
    ("ccc", "/openapi/ccc.json"),
    ("system", "/openapi/system.json"),
];
/// Where the original served its Swagger document.
pub const DNCASH_LEGACY_PATH: &str = "/dnapi/docs.json";
/// Swagger UI's entry page; its relative asset paths resolve under `/docs/`, so the redirect
/// names the file (`/docs/` serves the same page).
const SWAGGER_UI_PAGE: &str = "/docs/index.html";

/// The dncash-io document: every operation of the five API groups.
pub fn dncash_document() -> Document {
    let mut document = crate::dncash::document();
    SecuritySchemes.modify(&mut document);
    EdgeAnswers.modify(&mut document);
    document
}

/// The operational document: health, metrics, the landing texts and the documents themselves.
pub fn system_document() -> Document {
    SystemApi::openapi()
}

/// A document by its file name under `/openapi/`.
pub fn document(file: &str) -> Option<Document> {
    match file {
        "dncash.json" => Some(dncash_document()),
        "ledger.json" => Some(crate::ledger::document()),
        "ccc.json" => Some(crate::ccc::operator::document()),
        "system.json" => Some(system_document()),
        _ => None,
    }
}

/// The serialised documents, built once: they are fixed at compile time.
fn rendered(file: &str) -> Option<&'static str> {
    static RENDERED: OnceLock<Vec<(&'static str, String)>> = OnceLock::new();
    let documents = RENDERED.get_or_init(|| {
        DOCUMENTS
            .iter()
            .filter_map(|(_, path)| {
                let file = path.trim_start_matches("/openapi/");
                let text = document(file).map(|document| document.to_json());
                match text {
                    Some(Ok(text)) => Some((file, text)),
                    Some(Err(error)) => {
                        tracing::error!(%error, file, "cannot serialise an OpenAPI document");
                        None
                    }
                    None => None,
                }
            })
            .collect()
    });
    documents.iter().find(|(name, _)| *name == file).map(|(_, text)| text.as_str())
}

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/openapi/{document}", web::get().to(openapi_document))
        .route(DNCASH_LEGACY_PATH, web::get().to(dncash_legacy))
        .route("/docs", web::get().to(to_swagger_ui))
        .route("/dnapi/docs", web::get().to(to_swagger_ui))
        .route("/docs/{file:.*}", web::get().to(swagger_ui_file));
}

fn json_document(text: &str) -> HttpResponse {
    HttpResponse::Ok().content_type(ContentType::json()).body(text.to_owned())
}

/// `GET /openapi/{document}`.
#[utoipa::path(
    get,
    path = "/openapi/{document}",
    tag = "Documents",
    params(("document" = schemas::DocumentFile, Path, min_length = 1, description = "A document's file name.")),
    responses(
        (status = 200, description = "The OpenAPI 3 document.", content_type = "application/json", body = Object),
        (status = 404, description = "No such document (`{\"error\":\"Not Found\"}`).", body = crate::system::NotFound),
        schemas::Faults,
    )
)]
async fn openapi_document(path: web::Path<String>) -> HttpResponse {
    match rendered(&path) {
        Some(text) => json_document(text),
        None => crate::system::unknown_path(),
    }
}

/// `GET /dnapi/docs.json`: the dncash document where the original served its Swagger.
#[utoipa::path(
    get,
    path = "/dnapi/docs.json",
    tag = "Documents",
    responses(
        (status = 200, description = "The dncash OpenAPI 3 document (`/openapi/dncash.json`).", content_type = "application/json", body = Object),
        schemas::Faults,
    )
)]
async fn dncash_legacy() -> Result<HttpResponse, ApiError> {
    rendered("dncash.json").map(json_document).ok_or(ApiError::Internal)
}

/// `GET /docs` and the original's `GET /dnapi/docs`: to Swagger UI's page.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "Documents",
    responses((status = 302, description = "To Swagger UI (`/docs/index.html`), which lists every document."))
)]
async fn to_swagger_ui() -> HttpResponse {
    HttpResponse::Found().insert_header((header::LOCATION, SWAGGER_UI_PAGE)).finish()
}

#[utoipa::path(
    get,
    path = "/dnapi/docs",
    tag = "Documents",
    responses((status = 302, description = "To Swagger UI (`/docs/index.html`), where the original served its own."))
)]
#[allow(dead_code)] // Documents the second path of `to_swagger_ui`.
fn dnapi_docs() {}

fn swagger_config() -> Arc<Config<'static>> {
    static CONFIG: OnceLock<Arc<Config<'static>>> = OnceLock::new();
    CONFIG.get_or_init(|| Arc::new(Config::new(DOCUMENTS.map(|(name, path)| Url::new(name, path))))).clone()
}

/// `GET /docs/{file}`: Swagger UI's files, embedded in the binary.
#[utoipa::path(
    get,
    path = "/docs/{file}",
    tag = "Documents",
    params(("file" = String, Path, min_length = 1, description = "A file of Swagger UI, e.g. `index.html`.")),
    responses(
        (status = 200, description = "The file (HTML, JavaScript, CSS or an image)."),
        (status = 404, description = "No such file (`{\"error\":\"Not Found\"}`).", body = crate::system::NotFound),
        schemas::Faults,
    )
)]
async fn swagger_ui_file(path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    match utoipa_swagger_ui::serve(&path, swagger_config()) {
        Ok(Some(file)) => Ok(HttpResponse::Ok().content_type(file.content_type).body(file.bytes.into_owned())),
        Ok(None) => Ok(crate::system::unknown_path()),
        Err(error) => {
            tracing::error!(%error, "cannot render Swagger UI's configuration");
            Err(ApiError::Internal)
        }
    }
}

/// The `DN-API-KEY`/`DN-API-SECRET` header pair as the security schemes named `names` (key,
/// secret), the key described as `key_description`.
pub(crate) fn add_key_pair(document: &mut Document, names: (&str, &str), key_description: &str) {
    let components = document.components.get_or_insert_with(Default::default);
    let header =
        |name, description| SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(name, description)));
    components.add_security_scheme(names.0, header("DN-API-KEY", key_description));
    components.add_security_scheme(names.1, header("DN-API-SECRET", "The API secret of the same pair."));
}

/// The credentials every protected operation names.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, document: &mut Document) {
        add_key_pair(
            document,
            (API_KEY, API_SECRET),
            "The API key of a credential pair (`cashgrid access create`, or the portal's `POST /access`).",
        );
        let components = document.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            SESSION,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("The portal session from `POST /dnapi/admin/v1/auth`."))
                    .build(),
            ),
        );
    }
}

/// Answers the dncash edge gives on every operation, documented once here rather than on each
/// handler: a NUL in the path or query (400, before any handler runs), a body that does not
/// arrive in time (408), and a change whose outcome did not come back from the store (504).
struct EdgeAnswers;

const NUL_REFUSED: &str = "Text with a NUL character (`\\u0000` in the body, `%00` in the path or query) \
     is refused before anything is done: `Text must not contain NUL characters (\\u0000 or %00).`";
const BODY_TIMEOUT: &str = "The body did not arrive within the body deadline (`body_timeout_ms`, 30 s) \
     (`request body timeout`); the connection is closed.";
const OUTCOME_UNKNOWN: &str = "The change was handed to the store but its outcome did not come back in \
     time: it may or may not have taken effect. Read the entity to find out, or repeat a create with the \
     same `Idempotency-Key`.";

impl Modify for EdgeAnswers {
    fn modify(&self, document: &mut Document) {
        for item in document.paths.paths.values_mut() {
            let reads = [&mut item.get, &mut item.head].into_iter().flatten();
            let changes = [&mut item.post, &mut item.put, &mut item.delete, &mut item.patch].into_iter().flatten();
            for operation in reads.map(|operation| (operation, false)).chain(changes.map(|operation| (operation, true)))
            {
                let (operation, changes) = operation;
                let responses = &mut operation.responses.responses;
                match responses.get_mut("400") {
                    Some(RefOr::T(response)) => {
                        response.description = format!("{} {NUL_REFUSED}", response.description)
                    }
                    Some(RefOr::Ref(_)) => {}
                    None => {
                        responses.insert("400".to_owned(), schemas::global_error(NUL_REFUSED));
                    }
                }
                if operation.request_body.is_some() {
                    responses.entry("408".to_owned()).or_insert_with(|| schemas::global_error(BODY_TIMEOUT));
                }
                if changes {
                    responses.entry("504".to_owned()).or_insert_with(|| schemas::global_error(OUTCOME_UNKNOWN));
                }
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "cashgrid system endpoints",
        description = "Health, Prometheus metrics, the landing texts and the API documents. \
            These paths are matched exactly as sent (only the original's `/dnapi` paths are matched \
            case-insensitively and without a trailing slash); an unknown path outside `/dnapi` answers \
            `404 {\"error\":\"Not Found\"}` in every error mode."
    ),
    paths(
        crate::system::health,
        crate::system::metrics,
        crate::system::root,
        crate::system::dnapi,
        openapi_document,
        dncash_legacy,
        to_swagger_ui,
        dnapi_docs,
        swagger_ui_file,
    ),
    components(schemas(GlobalError, TextError, crate::system::NotFound, schemas::DocumentFile))
)]
struct SystemApi;

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn json(file: &str) -> Value {
        let text = rendered(file).unwrap_or_else(|| panic!("{file} is not rendered"));
        serde_json::from_str(text).unwrap_or_else(|error| panic!("{file}: {error}"))
    }

    /// Every `$ref` string anywhere in `value`.
    fn references(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("$ref", Value::String(reference)) => found.push(reference.clone()),
                        _ => references(value, found),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| references(item, found)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves_and_every_security_scheme_exists() {
        for (_, path) in DOCUMENTS {
            let document = json(path.trim_start_matches("/openapi/"));
            assert!(document["openapi"].as_str().is_some_and(|version| version.starts_with("3.")), "{path}");
            let mut found = Vec::new();
            references(&document, &mut found);
            for reference in found {
                let name = reference.trim_start_matches("#/components/schemas/");
                assert!(document["components"]["schemas"].get(name).is_some(), "{path}: {reference} does not resolve");
            }
            for (route, item) in document["paths"].as_object().into_iter().flatten() {
                for (method, operation) in item.as_object().into_iter().flatten() {
                    for requirement in operation["security"].as_array().into_iter().flatten() {
                        for scheme in requirement.as_object().into_iter().flatten().map(|(name, _)| name) {
                            assert!(
                                document["components"]["securitySchemes"].get(scheme).is_some(),
                                "{path}: {method} {route} names the unknown security scheme {scheme}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_dncash_document_covers_every_group() {
        let document = json("dncash.json");
        for prefix in
            ["/dnapi/token/v1/", "/dnapi/cash/v1/", "/dnapi/mobile/v1/", "/dnapi/clearing/v1/", "/dnapi/admin/v1/"]
        {
            assert!(
                document["paths"].as_object().into_iter().flatten().any(|(path, _)| path.starts_with(prefix)),
                "no operation under {prefix}"
            );
        }
    }

    #[test]
    fn enumerations_list_the_domains_wire_names() {
        let document = json("dncash.json");
        let schemas = &document["components"]["schemas"];
        assert_eq!(schemas["TokenStateName"]["enum"].as_array().map(Vec::len), Some(9));
        assert!(schemas["DeviceTypeName"]["enum"].as_array().into_iter().flatten().any(|name| name == "CASH_REGISTER"));
        assert!(schemas["ScopeName"]["enum"].as_array().into_iter().flatten().any(|name| name == "clearing-api"));
    }
}
