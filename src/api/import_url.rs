//! Imports of a file at a URL: `POST /v1/imports` with `{"table", "url", <options>}`. The
//! import is created at once (status `new`, step `downloading`, 202); the server then
//! streams the file into its source store as an upload would be (same limits, conversion
//! and sniffing), and queues the import, or ends it `failed` saying why the file could not be
//! had.

use std::sync::Arc;

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use uuid::Uuid;

use super::AppState;
use super::auth::{Auth, Member};
use super::error::{ApiError, ApiResult};
use super::import_options::{ImportSettings, RawOptions};
use super::url_source::{self, FetchError};
use super::views::import_view;
use crate::engine::staging::{detect, stage_with};
use crate::model::Step;

/// Creates an import of the file at `url` (202); the download runs in the background.
pub(super) async fn create(
    state: &AppState,
    auth: &Auth<Member>,
    headers: &HeaderMap,
    mut raw: RawOptions,
    url: Value,
) -> ApiResult<Response> {
    let Value::String(text) = url else {
        return Err(ApiError::validation("url must be a string"));
    };
    let url = url::Url::parse(&text)
        .map_err(|e| ApiError::validation(format!("url is not a valid URL: {e}")))?;
    state
        .config
        .url_policy
        .check(&url)
        .map_err(|e| ApiError::validation(e.to_string()))?;
    let settings = ImportSettings::parse(&raw)?;
    // Named after the URL's last segment, so that its extension can tell CSV from TSV.
    if settings.file_name.is_none()
        && let Some(name) = url
            .path_segments()
            .and_then(|mut s| s.next_back())
            .filter(|n| !n.is_empty())
    {
        raw.insert(
            "file_name".into(),
            Value::String(name.chars().take(255).collect()),
        );
    }
    // Created waiting for its source, which the download brings; the URL is one of its
    // settings, so that a key replayed with another URL is refused.
    raw.insert("start".into(), Value::Bool(false));
    raw.insert("url".into(), Value::String(url.to_string()));
    let waiting = ImportSettings::parse(&raw)?;
    let ws = &auth.workspace;
    let response =
        super::import_create::create_import(state, auth, headers, waiting, &mut [], None).await?;
    if response.headers().contains_key("idempotent-replayed") {
        return Ok(response);
    }
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .map_err(ApiError::internal)?;
    let id = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["id"].as_str().and_then(|id| Uuid::parse_str(id).ok()))
        .ok_or_else(|| ApiError::internal("a created import without an id"))?;
    state
        .store
        .set_new_import_step(ws.id, id, Step::Downloading, None)
        .await?;
    let import = state.store.get_import(ws.id, id).await?;
    let task = state.clone();
    let workspace = ws.id;
    tokio::spawn(async move {
        if let Err(why) = download(&task, workspace, id, &url, &settings).await {
            tracing::info!(import = %id, error = %why, "a URL import's download failed");
            if let Err(e) = task
                .store
                .set_new_import_step(workspace, id, Step::Done, Some(&why))
                .await
            {
                tracing::warn!(import = %id, error = %e, "could not record a failed download");
            }
        }
    });
    Ok((StatusCode::ACCEPTED, Json(import_view(&import))).into_response())
}

/// Fetches the source into the source store, records how to read it, and queues the import
/// (unless it was created with `start=false`); Err says why the import fails.
async fn download(
    state: &AppState,
    workspace: Uuid,
    id: Uuid,
    url: &url::Url,
    settings: &ImportSettings,
) -> Result<(), String> {
    let policy: Arc<url_source::UrlPolicy> = state.config.url_policy.clone();
    let body = url_source::fetch(url, policy).await.map_err(|e| match e {
        FetchError::Refused(why) => format!("the URL was refused: {why}"),
        other => other.to_string(),
    })?;
    let staged = stage_with(
        state.engine.blobs.staging_path(),
        Box::pin(body),
        &settings.stage_options(),
        state.config.max_upload_bytes,
    )
    .await
    .map_err(|e| format!("the file at the URL cannot be loaded: {e}"))?;
    let result = async {
        if staged.size == 0 {
            return Err(
                "the file at the URL is empty (0 bytes): there is nothing to import".into(),
            );
        }
        let import = state
            .store
            .get_import(workspace, id)
            .await
            .map_err(|e| e.to_string())?;
        let [input] = import.tables.as_slice() else {
            return Err("a URL import has one input".to_owned());
        };
        let sniffed = detect(
            &staged,
            settings.format,
            settings.delimiter,
            input.file_name.as_deref(),
        )
        .map_err(|why| format!("the file at the URL cannot be read: {why}"))?;
        let mut options = settings.input_options(sniffed.delimiter);
        options.replaced_sequences = staged.replaced;
        options.sheet = staged.workbook.clone();
        let options = serde_json::to_value(&options).map_err(|e| e.to_string())?;
        state
            .store
            .set_input_source(workspace, id, 0, sniffed.format.as_str(), &options)
            .await
            .map_err(|e| e.to_string())?;
        let key = input
            .blob_key
            .clone()
            .ok_or_else(|| "a URL import without a source key".to_owned())?;
        state
            .engine
            .blobs
            .commit(&staged.path, &key)
            .await
            .map_err(|e| format!("the file could not be stored: {e}"))?;
        if settings.start {
            state
                .engine
                .start(workspace, id, &[staged.size])
                .await
                .map_err(|e| e.to_string())?;
        } else {
            state
                .store
                .set_new_import_step(workspace, id, Step::Waiting, None)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
    .await;
    let _ = tokio::fs::remove_file(&staged.path).await;
    result
}
