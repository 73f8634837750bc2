//! The dialect's errors, as JSON:API error objects, and how requests are authorised.

use super::*;

/// A JSON:API error answer: `{"errors": [{title, detail, code, status, source}]}` (boxed:
/// results stay small on the happy path).
pub(super) struct ClError(Box<ErrorObject>);

/// The one error object of a [`ClError`].
pub(super) struct ErrorObject {
    pub(super) status: StatusCode,
    pub(super) code: &'static str,
    pub(super) title: String,
    pub(super) detail: String,
    pub(super) source: Value,
}

impl ClError {
    pub(super) fn new(
        status: StatusCode,
        code: &'static str,
        title: impl Into<String>,
        detail: impl Into<String>,
        source: Value,
    ) -> ClError {
        ClError(Box::new(ErrorObject {
            status,
            code,
            title: title.into(),
            detail: detail.into(),
            source,
        }))
    }

    /// A 400 about a query parameter.
    pub(super) fn param(code: &'static str, parameter: &str, detail: impl Into<String>) -> ClError {
        let detail = detail.into();
        ClError::new(
            StatusCode::BAD_REQUEST,
            code,
            detail.clone(),
            detail,
            json!({ "parameter": parameter }),
        )
    }

    /// A 422 about an attribute of the request's data.
    pub(super) fn invalid(attribute: &str, title: &str, detail: impl Into<String>) -> ClError {
        ClError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            title,
            detail,
            json!({ "pointer": format!("/data/attributes/{attribute}") }),
        )
    }

    pub(super) fn not_found() -> ClError {
        ClError::new(
            StatusCode::NOT_FOUND,
            "RECORD_NOT_FOUND",
            "Record not found",
            "The requested resource was not found.",
            json!({ "parameter": "id" }),
        )
    }
}

impl IntoResponse for ClError {
    fn into_response(self) -> Response {
        let e = *self.0;
        let body = json!({"errors": [{
            "title": e.title,
            "detail": e.detail,
            "code": e.code,
            "status": e.status.as_u16().to_string(),
            "source": e.source,
        }]});
        jsonapi(e.status, body)
    }
}

/// 423: the import is pending or running.
pub(super) fn locked(detail: impl Into<String>) -> ClError {
    ClError::new(
        StatusCode::LOCKED,
        "LOCKED",
        "Locked",
        detail,
        json!({ "parameter": "id" }),
    )
}

impl From<ApiError> for ClError {
    fn from(e: ApiError) -> ClError {
        let status = e.code.status();
        let (code, title) = match e.code {
            ErrorCode::NotFound => return ClError::not_found(),
            ErrorCode::Internal => {
                return ClError::new(
                    status,
                    "INTERNAL_SERVER_ERROR",
                    "Internal server error",
                    "Something went wrong; the cause was logged.",
                    json!({}),
                );
            }
            // Commerce Layer locks an import while it runs (423); its other refusals are
            // validation errors of the request.
            ErrorCode::ImportRunning => return locked(e.message),
            ErrorCode::Validation
            | ErrorCode::Conflict
            | ErrorCode::ImportNotCancellable
            | ErrorCode::ImportNotRollbackable
            | ErrorCode::RollbackBlocked
            | ErrorCode::ImportNotWaiting
            | ErrorCode::TableExists
            | ErrorCode::TableInUse
            | ErrorCode::WorkspaceExists
            | ErrorCode::WorkspaceBusy => ("VALIDATION_ERROR", "is invalid"),
            ErrorCode::PayloadTooLarge => ("PAYLOAD_TOO_LARGE", "Payload too large"),
            ErrorCode::UnsupportedMediaType | ErrorCode::UnsupportedFormat => {
                ("UNSUPPORTED_MEDIA_TYPE", "Unsupported media type")
            }
            ErrorCode::Unauthenticated => ("INVALID_TOKEN", "Invalid token"),
            ErrorCode::Forbidden => ("UNAUTHORIZED", "Unauthorized"),
            _ => ("BAD_REQUEST", "Bad request"),
        };
        ClError::new(status, code, title, e.message, json!({}))
    }
}

impl From<StoreError> for ClError {
    fn from(e: StoreError) -> ClError {
        ApiError::from(e).into()
    }
}

pub(super) type ClResult<T> = Result<T, ClError>;

/// A JSON:API answer.
pub(super) fn jsonapi(status: StatusCode, body: Value) -> Response {
    (status, [(http_header::CONTENT_TYPE, JSONAPI)], Json(body)).into_response()
}

/// The workspace of the bearer key, whose role must be at least `role`. Commerce Layer
/// answers 401 both for a bad token and for one without the permission.
pub(super) async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    role: Role,
) -> ClResult<Workspace> {
    authorize_key(state, headers, role).await.map(|(_, ws)| ws)
}

/// The bearer key and its workspace, for the routes that write (the key's scope applies).
pub(super) async fn authorize_key(
    state: &AppState,
    headers: &HeaderMap,
    role: Role,
) -> ClResult<(KeyRecord, Workspace)> {
    let Some((key, ws)) = caller(state, authorization(headers, "bearer")).await? else {
        return Err(ClError::new(
            StatusCode::UNAUTHORIZED,
            "INVALID_TOKEN",
            "Invalid token",
            "The access token you provided is invalid.",
            json!({ "header": "Authorization" }),
        ));
    };
    if key.role < role {
        return Err(ClError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "Unauthorized",
            format!(
                "You are not authorized to perform this action: it needs a key with role {} or above.",
                role.as_str()
            ),
            json!({ "header": "Authorization" }),
        ));
    }
    Ok((key, ws))
}

/// `scheme://host/compat/commercelayer`, from the request's `Host` (links are absolute).
pub(super) fn base_url(headers: &HeaderMap) -> String {
    let scheme = match header(headers, "x-forwarded-proto") {
        Some("https") => "https",
        _ => "http",
    };
    let host = header(headers, "host").unwrap_or("localhost");
    format!("{scheme}://{host}{PREFIX}")
}
