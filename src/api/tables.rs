//! `/v1/tables`: schemas that become real tables, their rows, and schema inference.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::{Admin, Auth, Viewer};
use super::error::ApiResult;
use super::pagination::{number_cursor, page_limit};
use super::views::table_view_of;
use crate::model::TableSchema;
use crate::model::schema::RawTableSchema;

/// Creates a table from a schema (201).
pub async fn create(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    body: Result<Json<RawTableSchema>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Json(raw) = body?;
    let schema = TableSchema::parse(raw)?;
    let table = state.store.create_table(&auth.workspace, &schema).await?;
    Ok((StatusCode::CREATED, Json(json!(table_view_of(&table)))))
}

/// Lists the workspace's tables.
pub async fn list(State(state): State<AppState>, auth: Auth<Viewer>) -> ApiResult<Json<Value>> {
    let tables = state.store.list_tables(&auth.workspace).await?;
    Ok(Json(
        json!({ "data": tables.iter().map(table_view_of).collect::<Vec<_>>() }),
    ))
}

/// One table, with its row count.
pub async fn get(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let table = state.store.get_table(&auth.workspace, &name).await?;
    Ok(Json(json!(table_view_of(&table))))
}

/// Drops a table and its rows (204).
pub async fn delete(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    state.store.delete_table(&auth.workspace, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query of `GET /v1/tables/{table}/records`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordsQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

/// A page of a table's rows, in storage order, with a cursor to the next page.
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
    Ok(Json(json!({
        "data": page.rows,
        "next_cursor": page.next.map(|n| n.to_string()),
        "has_more": page.next.is_some(),
    })))
}
