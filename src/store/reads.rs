//! Lists of the store's own records, written once for both backends: each backend runs a
//! query written with `$n` placeholders ([`Query`]) and the rows become records through
//! [`stored_row`](super::stored_row). Pages go by id, after `after` (ascending lists) or before
//! it (the newest-first ones).

use uuid::Uuid;

use super::apply::Arg;
use super::columns::{KEY_COLUMNS, WEBHOOK_COLUMNS};
use super::stored_row::{self, StoredRow};
use super::{
    DeliveryRecord, ErrorGroup, EventRecord, KeyRecord, StoreError, StoreResult, StoredRowError,
    WebhookRecord, Workspace,
};

/// Makes a record of a row.
pub(crate) type Reader<T> = fn(&dyn StoredRow) -> StoreResult<T>;

/// A connection that runs the store's read queries.
pub(crate) trait Query {
    /// The records `read` makes of the rows of a query written with `$n` placeholders.
    fn rows<T>(&mut self, sql: &str, args: &[Arg<'_>], read: Reader<T>) -> StoreResult<Vec<T>>;
}

/// Answers "not found" unless a query finds a row: the check that the parent of a list
/// belongs to the workspace (another workspace's import or webhook is indistinguishable
/// from a missing one).
fn must_find(
    c: &mut impl Query,
    what: &'static str,
    sql: &str,
    args: &[Arg<'_>],
) -> StoreResult<()> {
    if c.rows(sql, args, |_| Ok(()))?.is_empty() {
        return Err(StoreError::NotFound(what));
    }
    Ok(())
}

/// The arguments of a page of a list: its owner's id, the id to go on from, the page size.
fn page_of(owner: Uuid, from: i64, limit: u32) -> [Arg<'static>; 3] {
    [Arg::Id(owner), Arg::Int(from), Arg::Int(i64::from(limit))]
}

fn import_of(c: &mut impl Query, workspace_id: Uuid, id: Uuid) -> StoreResult<()> {
    let sql = "SELECT 1 FROM intake_imports WHERE id = $1 AND workspace_id = $2";
    must_find(c, "import", sql, &[Arg::Id(id), Arg::Id(workspace_id)])
}

/// Every workspace, oldest first.
pub(crate) fn workspaces(mut c: impl Query) -> StoreResult<Vec<Workspace>> {
    c.rows(
        "SELECT id, slug, name, created_at FROM intake_workspaces ORDER BY created_at, id",
        &[],
        stored_row::workspace,
    )
}

/// A workspace's keys, newest first.
pub(crate) fn keys(mut c: impl Query, workspace_id: Uuid) -> StoreResult<Vec<KeyRecord>> {
    c.rows(
        &format!(
            "SELECT {KEY_COLUMNS} FROM intake_api_keys WHERE workspace_id = $1
             ORDER BY created_at DESC, id DESC"
        ),
        &[Arg::Id(workspace_id)],
        stored_row::key,
    )
}

/// A workspace's webhooks, oldest first.
pub(crate) fn webhooks(mut c: impl Query, workspace_id: Uuid) -> StoreResult<Vec<WebhookRecord>> {
    c.rows(
        &format!(
            "SELECT {WEBHOOK_COLUMNS} FROM intake_webhooks WHERE workspace_id = $1
             ORDER BY created_at, id"
        ),
        &[Arg::Id(workspace_id)],
        stored_row::webhook,
    )
}

/// A page of a webhook's deliveries, newest first.
pub(crate) fn deliveries(
    mut c: impl Query,
    workspace_id: Uuid,
    webhook_id: Uuid,
    after: Option<i64>,
    limit: u32,
) -> StoreResult<Vec<DeliveryRecord>> {
    let sql = "SELECT 1 FROM intake_webhooks WHERE id = $1 AND workspace_id = $2";
    must_find(
        &mut c,
        "webhook",
        sql,
        &[Arg::Id(webhook_id), Arg::Id(workspace_id)],
    )?;
    c.rows(
        "SELECT id, event_id, event_type, import_id, status, attempts, last_status_code,
         last_error, next_attempt_at, created_at, delivered_at FROM intake_webhook_deliveries
         WHERE webhook_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        &page_of(webhook_id, after.unwrap_or(i64::MAX), limit),
        stored_row::delivery,
    )
}

/// A page of events, oldest first: an import's, or with no import, those of every import of
/// the workspace.
pub(crate) fn events(
    mut c: impl Query,
    workspace_id: Uuid,
    import: Option<Uuid>,
    after: Option<i64>,
    limit: u32,
) -> StoreResult<Vec<EventRecord>> {
    let (column, owner) = match import {
        Some(id) => {
            import_of(&mut c, workspace_id, id)?;
            ("import_id", id)
        }
        None => ("workspace_id", workspace_id),
    };
    c.rows(
        &format!(
            "SELECT id, import_id, kind, data, created_at FROM intake_events
             WHERE {column} = $1 AND id > $2 ORDER BY id LIMIT $3"
        ),
        &page_of(owner, after.unwrap_or(0), limit),
        stored_row::event,
    )
}

/// A page of an import's stored row errors, in source order.
pub(crate) fn row_errors(
    mut c: impl Query,
    workspace_id: Uuid,
    id: Uuid,
    after: Option<i64>,
    limit: u32,
) -> StoreResult<Vec<StoredRowError>> {
    import_of(&mut c, workspace_id, id)?;
    c.rows(
        "SELECT e.id, t.table_name, e.line, e.record, e.column_name, e.code, e.message, e.row
         FROM intake_row_errors e
         JOIN intake_import_tables t ON t.import_id = e.import_id AND t.position = e.position
         WHERE e.import_id = $1 AND e.id > $2 ORDER BY e.id LIMIT $3",
        &page_of(id, after.unwrap_or(0), limit),
        stored_row::row_error,
    )
}

/// An import's stored row errors grouped by table, column and code, the largest groups
/// first; the first error of each group is the one listed first (lowest id: source order).
pub(crate) fn error_groups(
    mut c: impl Query,
    workspace_id: Uuid,
    id: Uuid,
) -> StoreResult<Vec<ErrorGroup>> {
    import_of(&mut c, workspace_id, id)?;
    c.rows(
        "SELECT t.table_name, g.column_name, g.code, g.n, e.line, e.message
         FROM (SELECT position, column_name, code, count(*) AS n, min(id) AS first
               FROM intake_row_errors WHERE import_id = $1
               GROUP BY position, column_name, code) g
         JOIN intake_row_errors e ON e.id = g.first
         JOIN intake_import_tables t ON t.import_id = $1 AND t.position = g.position
         ORDER BY g.n DESC, e.line, g.position",
        &[Arg::Id(id)],
        stored_row::error_group,
    )
}
