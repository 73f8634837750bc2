//! `/v1/tables`: schemas that become real tables, their rows, and schema inference.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;

use super::AppState;
use super::auth::{Admin, Auth, Viewer};
use super::error::ApiResult;
use super::pagination::{number_cursor, page_limit};
use super::views::{List, Page, TableView, table_view_of};
use crate::model::TableSchema;
use crate::model::schema::RawTableSchema;

/// Creates a table from a schema (201).
#[utoipa::path(post, path = "/v1/tables", tag = "tables", request_body = RawTableSchema,
    responses((status = 201, body = TableView)))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    body: Result<Json<RawTableSchema>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Json(raw) = body?;
    let schema = TableSchema::parse(raw)?;
    super::auth::check_scope(&auth.key, schema.name.as_str())?;
    let table = state.store.create_table(&auth.workspace, &schema).await?;
    Ok((StatusCode::CREATED, Json(view(&table)?)))
}

/// A table's view as JSON (its borrowed parts end with the record).
fn view(table: &crate::store::TableRecord) -> ApiResult<Value> {
    serde_json::to_value(table_view_of(table)).map_err(super::error::ApiError::internal)
}

/// Lists the workspace's tables.
#[utoipa::path(get, path = "/v1/tables", tag = "tables",
    responses((status = 200, body = List<TableView>)))]
pub async fn list(State(state): State<AppState>, auth: Auth<Viewer>) -> ApiResult<Json<Value>> {
    let tables = state.store.list_tables(&auth.workspace).await?;
    let list = List {
        data: tables.iter().map(table_view_of).collect(),
    };
    Ok(Json(
        serde_json::to_value(list).map_err(super::error::ApiError::internal)?,
    ))
}

/// One table, with its row count.
#[utoipa::path(get, path = "/v1/tables/{table}", tag = "tables",
    params(("table" = String, Path, description = "The table's name")),
    responses((status = 200, body = TableView)))]
pub async fn get(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let table = state.store.get_table(&auth.workspace, &name).await?;
    Ok(Json(view(&table)?))
}

/// Drops a table and its rows (204).
#[utoipa::path(delete, path = "/v1/tables/{table}", tag = "tables",
    params(("table" = String, Path, description = "The table's name")),
    responses((status = 204, description = "Dropped")))]
pub async fn delete(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    super::auth::check_scope(&auth.key, &name)?;
    state.store.delete_table(&auth.workspace, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query of `GET /v1/tables/{table}/records`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecordsQuery {
    /// Rows a page (1-1000, default 50).
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A page of a table's rows, in storage order, with a cursor to the next page.
#[utoipa::path(get, path = "/v1/tables/{table}/records", tag = "tables",
    params(("table" = String, Path, description = "The table's name"), RecordsQuery),
    responses((status = 200, description = "Rows keyed by column name", body = Page<Value>)))]
pub async fn records(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    Path(name): Path<String>,
    query: Result<Query<RecordsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = query?;
    let limit = page_limit(q.limit)?;
    let after = number_cursor(q.cursor.as_deref())?;
    let table = state.store.get_table(&auth.workspace, &name).await?;
    let page = state
        .store
        .read_records(&auth.workspace, &table.schema, after, limit)
        .await?;
    let has_more = page.next.is_some();
    let page = Page {
        data: page.rows,
        next_cursor: page.next.map(|n| n.to_string()),
        has_more,
    };
    Ok(Json(
        serde_json::to_value(page).map_err(super::error::ApiError::internal)?,
    ))
}
