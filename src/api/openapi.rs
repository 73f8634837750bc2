//! The OpenAPI 3.1 document of the native API, served at `GET /openapi.json`. It is built
//! from the handlers' own annotations and types, so it cannot drift from what they do;
//! the fuzzer in CI (schemathesis) checks the answers against it.

use std::sync::OnceLock;

use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, ResponseBuilder, content::ContentBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

use super::error::ErrorCode;
use super::{admin, health, import_file, imports, keys, schema_infer, stream, tables, webhooks};

/// The body of every error answer.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong: a stable code, a message for people, and fields some codes add
/// (`import_id`, `retry_after`, `received`).
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// One of the codes in docs/api.md (`validation_failed`, `not_found`, …); the document
    /// lists them all, from the one table of codes.
    pub code: String,
    pub message: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Intake",
        description = "Loads CSV, TSV, NDJSON, JSON and spreadsheets into typed SQL tables as background jobs. \
                       Every `/v1` route takes `Authorization: Bearer <key>`.",
        license(name = "MIT")
    ),
    paths(
        health::healthz,
        health::readyz,
        health::version,
        keys::me,
        keys::create,
        keys::list,
        keys::revoke,
        tables::create,
        tables::list,
        tables::get,
        tables::delete,
        tables::records,
        imports::create_from_records,
        schema_infer::infer,
        imports::create,
        imports::list,
        imports::get,
        imports::delete,
        imports::rollback,
        imports::progress,
        imports::errors,
        imports::error_summary,
        imports::events,
        imports::cancel,
        import_file::upload,
        import_file::start,
        stream::import_stream,
        stream::workspace_stream,
        webhooks::create,
        webhooks::list,
        webhooks::delete,
        webhooks::deliveries,
        admin::create_workspace,
        admin::list_workspaces,
        admin::delete_workspace,
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&Security, &ErrorAnswers),
    security(("bearer" = []))
)]
struct ApiDoc;

/// Declares the bearer key scheme.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key: `Authorization: Bearer <key>`."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "admin",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The instance-admin key given at start (`--admin-key`).",
                    ))
                    .build(),
            ),
        );
    }
}

/// Gives every operation the error envelope as its `default` answer (any status an
/// operation does not list is an error with that body), and lists the error codes.
struct ErrorAnswers;

impl Modify for ErrorAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let error = ResponseBuilder::new()
            .description("An error: `{\"error\": {\"code\", \"message\"}}` (see docs/api.md)")
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        "ErrorBody",
                    ))))
                    .build(),
            )
            .build();
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                op.responses
                    .responses
                    .entry("default".into())
                    .or_insert_with(|| RefOr::T(error.clone()));
            }
        }
        let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        let code = ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(codes))
            .description(Some("A stable code; docs/api.md gives each one's status"))
            .into();
        if let Some(components) = openapi.components.as_mut()
            && let Some(RefOr::T(Schema::Object(detail))) =
                components.schemas.get_mut("ErrorDetail")
        {
            detail.properties.insert("code".into(), code);
        }
    }
}

/// The document as JSON text, built once.
fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = ApiDoc::openapi();
        doc.info.version = env!("CARGO_PKG_VERSION").into();
        doc.to_json().unwrap_or_default()
    })
}

/// `GET /openapi.json`: the document (no key needed, as for a public API reference).
pub async fn serve() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        document(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_names_every_native_route_of_the_router() {
        let doc: serde_json::Value = serde_json::from_str(document()).expect("valid JSON");
        assert!(doc["openapi"].as_str().unwrap_or("").starts_with("3.1"));
        let paths = doc["paths"].as_object().expect("paths");
        for route in [
            "/v1/me",
            "/v1/keys",
            "/v1/keys/{id}",
            "/v1/tables",
            "/v1/tables/{table}",
            "/v1/tables/{table}/records",
            "/v1/schema/infer",
            "/v1/imports",
            "/v1/imports/{id}",
            "/v1/imports/{id}/rollback",
            "/v1/imports/{id}/progress",
            "/v1/imports/{id}/errors",
            "/v1/imports/{id}/errors/summary",
            "/v1/imports/{id}/events",
            "/v1/imports/{id}/cancel",
            "/v1/imports/{id}/file",
            "/v1/imports/{id}/start",
            "/v1/imports/{id}/stream",
            "/v1/stream",
            "/v1/webhooks",
            "/v1/webhooks/{id}",
            "/v1/webhooks/{id}/deliveries",
            "/admin/workspaces",
            "/admin/workspaces/{slug}",
        ] {
            assert!(paths.contains_key(route), "{route} is missing");
        }
        assert_eq!(
            paths.len(),
            27,
            "a route is documented that the router lacks"
        );
    }

    #[test]
    fn the_document_lists_every_error_code() {
        let doc: serde_json::Value = serde_json::from_str(document()).expect("valid JSON");
        let listed = &doc["components"]["schemas"]["ErrorDetail"]["properties"]["code"]["enum"];
        let expected: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(listed, &serde_json::json!(expected));
        assert!(expected.contains(&"import_not_cancellable"));
    }
}
