//! The one error envelope of the API: `{"error": {"code", "message", ...}}`. Every error code
//! is declared once below with its HTTP status; each layer's errors map into it here.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::model::Refusal;
use crate::store::StoreError;

/// Every error code the API answers with, and its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadRequest,
    InvalidJson,
    Unauthenticated,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    /// A request that conflicts with the state of what it names (e.g. an upload to a
    /// finished import), where no finer code says more.
    Conflict,
    /// Cancelling an import that has ended.
    ImportNotCancellable,
    /// Rolling back or deleting an import that has not ended.
    ImportRunning,
    /// Rolling back an import that wrote nothing or whose undo journal was pruned.
    ImportNotRollbackable,
    /// Rolling back an import whose rows a later import changed.
    RollbackBlocked,
    /// Starting, or sending a source to, an import that no longer waits for one.
    ImportNotWaiting,
    /// Creating a table whose name is taken.
    TableExists,
    /// Deleting a table an unfinished import writes to.
    TableInUse,
    /// Creating a workspace whose slug is taken.
    WorkspaceExists,
    /// Deleting a workspace while one of its imports runs.
    WorkspaceBusy,
    PayloadTooLarge,
    UnsupportedMediaType,
    UnsupportedFormat,
    Validation,
    EmptyFile,
    IdempotencyKeyReused,
    Internal,
    /// The database cannot be reached for now (answered with `Retry-After`).
    DatabaseUnavailable,
    /// The disk that would hold the data is full.
    StorageFull,
    /// The workspace sends more requests than its rate allows (answered with `Retry-After`).
    RateLimited,
}

/// Seconds a client is told to wait (`Retry-After`) before sending again a request that met
/// an unavailable database: about the time a restarting server takes.
pub const RETRY_AFTER_SECONDS: u64 = 2;

impl ErrorCode {
    /// The code's name in error bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Conflict => "conflict",
            ErrorCode::ImportNotCancellable => "import_not_cancellable",
            ErrorCode::ImportRunning => "import_running",
            ErrorCode::ImportNotRollbackable => "import_not_rollbackable",
            ErrorCode::RollbackBlocked => "rollback_blocked",
            ErrorCode::ImportNotWaiting => "import_not_waiting",
            ErrorCode::TableExists => "table_exists",
            ErrorCode::TableInUse => "table_in_use",
            ErrorCode::WorkspaceExists => "workspace_exists",
            ErrorCode::WorkspaceBusy => "workspace_busy",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::UnsupportedFormat => "unsupported_format",
            ErrorCode::Validation => "validation_failed",
            ErrorCode::EmptyFile => "empty_file",
            ErrorCode::IdempotencyKeyReused => "idempotency_key_reused",
            ErrorCode::Internal => "internal",
            ErrorCode::DatabaseUnavailable => "database_unavailable",
            ErrorCode::StorageFull => "storage_full",
            ErrorCode::RateLimited => "rate_limited",
        }
    }

    /// Every code, in documentation order.
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::BadRequest,
        ErrorCode::InvalidJson,
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::Conflict,
        ErrorCode::ImportNotCancellable,
        ErrorCode::ImportRunning,
        ErrorCode::ImportNotRollbackable,
        ErrorCode::RollbackBlocked,
        ErrorCode::ImportNotWaiting,
        ErrorCode::TableExists,
        ErrorCode::TableInUse,
        ErrorCode::WorkspaceExists,
        ErrorCode::WorkspaceBusy,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::UnsupportedFormat,
        ErrorCode::Validation,
        ErrorCode::EmptyFile,
        ErrorCode::IdempotencyKeyReused,
        ErrorCode::Internal,
        ErrorCode::DatabaseUnavailable,
        ErrorCode::StorageFull,
        ErrorCode::RateLimited,
    ];

    /// The code a refusal of the model is answered with.
    pub fn of_refusal(refusal: &Refusal) -> ErrorCode {
        match refusal {
            Refusal::NotCancellable(_) => ErrorCode::ImportNotCancellable,
            Refusal::Running(..) => ErrorCode::ImportRunning,
            Refusal::NotRollbackable(_) => ErrorCode::ImportNotRollbackable,
            Refusal::RollbackBlocked { .. } => ErrorCode::RollbackBlocked,
            Refusal::NotWaiting(_) => ErrorCode::ImportNotWaiting,
            Refusal::WorkspaceExists(_) => ErrorCode::WorkspaceExists,
            Refusal::WorkspaceBusy { .. } => ErrorCode::WorkspaceBusy,
            Refusal::KeyOutranks(_) => ErrorCode::Forbidden,
            Refusal::TableExists(_) | Refusal::TableLeftOver { .. } => ErrorCode::TableExists,
            Refusal::TableInUse { .. } => ErrorCode::TableInUse,
        }
    }

    /// The HTTP status the code is answered with.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::BadRequest | ErrorCode::InvalidJson => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Conflict
            | ErrorCode::ImportNotCancellable
            | ErrorCode::ImportRunning
            | ErrorCode::ImportNotRollbackable
            | ErrorCode::RollbackBlocked
            | ErrorCode::ImportNotWaiting
            | ErrorCode::TableExists
            | ErrorCode::TableInUse
            | ErrorCode::WorkspaceExists
            | ErrorCode::WorkspaceBusy => StatusCode::CONFLICT,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType | ErrorCode::UnsupportedFormat => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ErrorCode::Validation | ErrorCode::EmptyFile | ErrorCode::IdempotencyKeyReused => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::DatabaseUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::StorageFull => StatusCode::INSUFFICIENT_STORAGE,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        }
    }
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Extra fields merged into the error object (e.g. `import_id`).
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// Seconds the client should wait before sending the request again (`Retry-After`).
    pub retry_after: Option<u64>,
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            extra: serde_json::Map::new(),
            retry_after: None,
        }
    }

    /// A 400.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::BadRequest, message)
    }

    /// A 422.
    pub fn validation(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Validation, message)
    }

    /// A 404 naming what was not found.
    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    /// Adds a field to the error object.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> ApiError {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    /// A 500 whose cause is logged, not shown.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "internal error");
        ApiError::new(ErrorCode::Internal, "internal error; the cause was logged")
    }

    /// A 503 (with `Retry-After`) for a database that cannot be reached; the cause is logged.
    pub fn unavailable(cause: impl std::fmt::Display) -> ApiError {
        tracing::warn!(error = %cause, "the database is unavailable");
        let mut error = ApiError::new(
            ErrorCode::DatabaseUnavailable,
            "the database is unavailable for now; send the request again shortly",
        );
        error.retry_after = Some(RETRY_AFTER_SECONDS);
        error
    }

    /// A 507 for a write the disk had no room for; the cause is logged.
    pub fn storage_full(what: &str, cause: impl std::fmt::Display) -> ApiError {
        tracing::warn!(error = %cause, "the disk is full");
        ApiError::new(
            ErrorCode::StorageFull,
            format!("there is no space left to store {what}; free some space and send it again"),
        )
    }

    /// The answer to a failed file write: 507 when the disk (or a quota) is full, else 500.
    pub fn io(what: &str, e: &std::io::Error) -> ApiError {
        if crate::blob::is_storage_full(e) {
            ApiError::storage_full(what, e)
        } else {
            ApiError::internal(e)
        }
    }

    /// The answer to a failed operation on stored sources: 507 when the local disk is full.
    pub fn blob(what: &str, e: crate::blob::BlobError) -> ApiError {
        match e {
            crate::blob::BlobError::Io(e) => ApiError::io(what, &e),
            e => ApiError::internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::Map::new();
        body.insert("code".into(), json!(self.code.as_str()));
        body.insert("message".into(), json!(self.message));
        body.extend(self.extra);
        let mut response = (self.code.status(), Json(json!({ "error": body }))).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(seconds),
            );
        }
        if self.code == ErrorCode::Unauthenticated {
            // RFC 9110: a 401 names the scheme that would be accepted.
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"intake\""),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound(what) => ApiError::not_found(what),
            StoreError::Refused(r) => ApiError::from(r),
            StoreError::Invalid(m) => ApiError::validation(m),
            e @ StoreError::Unavailable(_) => ApiError::unavailable(e),
            e @ StoreError::StorageFull(_) => ApiError::storage_full("the change", e),
            e @ (StoreError::LeaseLost
            | StoreError::Contention(_)
            | StoreError::Replay
            | StoreError::Database(_)) => ApiError::internal(e),
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> ApiError {
        ApiError::new(ErrorCode::of_refusal(&r), r.to_string())
    }
}

impl From<crate::model::SchemaError> for ApiError {
    fn from(e: crate::model::SchemaError) -> ApiError {
        ApiError::validation(e.0)
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(e: axum::extract::rejection::JsonRejection) -> ApiError {
        use axum::extract::rejection::JsonRejection as J;
        match e {
            J::MissingJsonContentType(_) => ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "expected a JSON body with Content-Type: application/json",
            ),
            J::JsonDataError(e) => ApiError::validation(e.body_text()),
            other => ApiError::new(ErrorCode::InvalidJson, other.body_text()),
        }
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(e: axum::extract::rejection::QueryRejection) -> ApiError {
        ApiError::bad_request(e.body_text())
    }
}

/// Answers 405 in the error envelope for a known route with another method.
pub async fn wrong_method() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this route does not take that method",
    )
}

/// Answers 404 in the error envelope for unknown routes.
pub async fn no_route() -> ApiError {
    ApiError::not_found("route")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_docs_list_every_code_with_its_status() {
        let docs = include_str!("../../docs/api.md");
        for code in ErrorCode::ALL {
            let row = format!("| `{}` | {} |", code.as_str(), code.status().as_u16());
            assert!(docs.contains(&row), "docs/api.md lacks the row {row}");
        }
    }
}
