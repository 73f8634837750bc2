//! Managed tables: their definitions and the real PostgreSQL tables behind them.
//! Each workspace has a schema named by its slug; table `orders` of workspace `acme` is
//! `acme.orders`. Every table also has two bookkeeping columns: `_intake_import`, the number
//! of the import that last wrote the row, and `_intake_row`, the row's place in storage order
//! (what the records API pages by, as SQLite pages by rowid).

use ::postgres::Transaction;
use uuid::Uuid;

use super::values::{cell_to_json, declared_type, qualified, quote, read_expr};
use super::{StoreError, StoreResult, now};
use crate::model::{ColumnSpec, ColumnType, Refusal, TableSchema};
use crate::store::ddl::column_defs;
use crate::store::{RecordsPage, TableRecord, Workspace};

pub use crate::store::columns::IMPORT_COLUMN;

/// The column holding each row's place in storage order.
pub const ROW_COLUMN: &str = "_intake_row";

/// Kinds of tables kept beside a table: a replace's new rows, a replaced table kept for undo,
/// a dry run's seen keys and a dry-run replace's rows.
const SIDE_KINDS: [&str; 5] = ["replace", "undo", "seen", "dry_run", "journal"];

/// The slug of a workspace, which names its schema.
pub(super) fn workspace_slug(
    tx: &mut impl ::postgres::GenericClient,
    workspace_id: Uuid,
) -> StoreResult<String> {
    let row = tx
        .query_opt(
            "SELECT slug FROM intake_workspaces WHERE id = $1",
            &[&workspace_id],
        )?
        .ok_or(StoreError::NotFound("workspace"))?;
    Ok(row.try_get(0)?)
}

/// Refuses slugs that cannot be a workspace's schema: PostgreSQL's own schemas, the one
/// Intake's metadata lives in, and names longer than PostgreSQL keeps.
pub(super) fn check_slug(slug: &str) -> StoreResult<()> {
    let lower = slug.to_ascii_lowercase();
    if slug.is_empty() {
        return Err(StoreError::Invalid(
            "a workspace slug cannot be empty".into(),
        ));
    }
    if slug.len() > 63 {
        return Err(StoreError::Invalid(format!(
            "workspace slug {slug:?} is longer than 63 bytes"
        )));
    }
    if lower == "public" || lower == "information_schema" || lower.starts_with("pg_") {
        return Err(StoreError::Invalid(format!(
            "workspace slug {slug:?} is reserved by PostgreSQL"
        )));
    }
    if slug.contains('\0') {
        return Err(StoreError::Invalid(
            "a workspace slug cannot contain NUL".into(),
        ));
    }
    Ok(())
}

/// The table's name as users query it: `slug.table`.
pub fn display_name(slug: &str, table: &str) -> String {
    format!("{slug}.{table}")
}

/// What side tables of `table` are named from: the table's name, or for a long name a
/// shortened form with a hash, so that `<prefix>__dry_run_<any number>` fits PostgreSQL's
/// 63 bytes (longer names would be cut, and could collide).
fn side_prefix(table: &str) -> String {
    if table.len() <= 32 {
        return table.to_owned();
    }
    // FNV-1a: stable across processes and versions.
    let hash = table.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("{}__h{hash:08x}", &table[..20])
}

/// The name of a table kept beside `table` for import `number`.
pub fn side_table(table: &str, kind: &str, number: i64) -> String {
    format!("{}__{kind}_{number}", side_prefix(table))
}

/// The table a replace keeps the previous rows in, to roll back.
pub fn undo_table(table: &str, number: i64) -> String {
    side_table(table, "undo", number)
}

/// The table an upsert journals the rows it changes in (each row's version before the
/// import first touched it), to roll back.
pub fn journal_table(table: &str, number: i64) -> String {
    side_table(table, "journal", number)
}

/// The expression rows are paged by: a single integer (or boolean) key, as SQLite orders a
/// rowid alias; otherwise `_intake_row`.
pub fn order_expr(schema: &TableSchema) -> String {
    if let [key] = schema.key_indexes()[..] {
        let col = &schema.columns[key];
        match col.ty {
            ColumnType::Integer => return quote(col.name.as_str()),
            ColumnType::Boolean => return format!("{}::int::bigint", quote(col.name.as_str())),
            _ => {}
        }
    }
    quote(ROW_COLUMN)
}

/// The statements creating a table of a schema: the table, and the index reads page by
/// when that is not the key.
pub fn create_sql(slug: &str, name: &str, schema: &TableSchema, unlogged: bool) -> String {
    let extra = [
        format!("{} bigint NOT NULL", quote(IMPORT_COLUMN)),
        format!("{} bigint NOT NULL", quote(ROW_COLUMN)),
    ];
    let cols = column_defs(schema, declared_type, &extra);
    let table = qualified(slug, name);
    let mut sql = format!(
        "CREATE {}TABLE {table} (\n  {}\n);",
        if unlogged { "UNLOGGED " } else { "" },
        cols.join(",\n  ")
    );
    if order_expr(schema) == quote(ROW_COLUMN) {
        sql.push_str(&format!(
            "\nCREATE INDEX ON {table} ({});",
            quote(ROW_COLUMN)
        ));
    }
    sql
}

/// Whether a table exists in a workspace's schema.
pub(super) fn exists(
    tx: &mut impl ::postgres::GenericClient,
    slug: &str,
    name: &str,
) -> StoreResult<bool> {
    Ok(tx
        .query_opt(
            "SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = $1 AND tablename = $2",
            &[&slug, &name],
        )?
        .is_some())
}

pub(super) fn create(
    tx: &mut Transaction<'_>,
    ws: &Workspace,
    schema: &TableSchema,
) -> StoreResult<TableRecord> {
    let name = schema.name.as_str();
    let taken = tx.query_opt(
        "SELECT 1 FROM intake_tables WHERE workspace_id = $1 AND name = $2",
        &[&ws.id, &name],
    )?;
    if taken.is_some() {
        return Err(Refusal::TableExists(name.to_owned()).into());
    }
    let created_at = now();
    let schema_json = serde_json::to_value(schema)
        .map_err(|e| StoreError::Database(format!("schema encoding: {e}")))?;
    // Two requests creating the same table at once both pass the check above; the second
    // waits on the first's row, then finds its name taken.
    tx.execute(
        "INSERT INTO intake_tables (workspace_id, name, schema, created_at) VALUES ($1, $2, $3, $4)",
        &[&ws.id, &name, &schema_json, &created_at],
    )
    .map_err(|e| {
        if unique_violation(&e) {
            StoreError::from(Refusal::TableExists(name.to_owned()))
        } else {
            e.into()
        }
    })?;
    // Two first tables of a workspace at once race to create its schema, `IF NOT EXISTS`
    // or not: the loser runs again, and finds it.
    tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {}", quote(&ws.slug)))
        .map_err(|e| {
            if unique_violation(&e) {
                let why = db_message(&e);
                StoreError::Contention(format!("creating schema {:?}: {why}", ws.slug))
            } else {
                e.into()
            }
        })?;
    // A leftover table of the same name (created outside Intake) is an error, not adopted.
    tx.batch_execute(&create_sql(&ws.slug, name, schema, false))
        .map_err(|e| {
            StoreError::from(Refusal::TableLeftOver {
                name: name.to_owned(),
                why: db_message(&e),
            })
        })?;
    Ok(TableRecord {
        schema: schema.clone(),
        physical_name: display_name(&ws.slug, name),
        created_at,
        row_count: Some(0),
    })
}

/// Whether a database error is a unique violation.
fn unique_violation(e: &::postgres::Error) -> bool {
    e.code() == Some(&::postgres::error::SqlState::UNIQUE_VIOLATION)
}

/// The server's message of a database error (its text without the client's prefixes).
pub(super) fn db_message(e: &::postgres::Error) -> String {
    e.as_db_error()
        .map_or_else(|| e.to_string(), |db| db.message().to_owned())
}

/// Adds nullable columns to a table, in one transaction with its stored schema.
pub(super) fn add_columns(
    tx: &mut Transaction<'_>,
    ws: &Workspace,
    name: &str,
    columns: &[ColumnSpec],
) -> StoreResult<TableRecord> {
    let Some(row) = tx.query_opt(
        "SELECT schema, created_at FROM intake_tables WHERE workspace_id = $1 AND name = $2
         FOR UPDATE",
        &[&ws.id, &name],
    )?
    else {
        return Err(StoreError::NotFound("table"));
    };
    let mut schema = schema_from_json(row.try_get(0)?)?;
    let created_at = row.try_get(1)?;
    for column in schema.columns_to_add(columns) {
        tx.batch_execute(&format!(
            "ALTER TABLE {} ADD COLUMN {} {}",
            qualified(&ws.slug, name),
            quote(column.name.as_str()),
            declared_type(&column)
        ))?;
        schema.columns.push(column);
    }
    let schema_json = serde_json::to_value(&schema)
        .map_err(|e| StoreError::Database(format!("schema encoding: {e}")))?;
    tx.execute(
        "UPDATE intake_tables SET schema = $3 WHERE workspace_id = $1 AND name = $2",
        &[&ws.id, &name, &schema_json],
    )?;
    Ok(TableRecord {
        schema,
        physical_name: display_name(&ws.slug, name),
        created_at,
        row_count: None,
    })
}

fn schema_from_json(value: serde_json::Value) -> StoreResult<TableSchema> {
    crate::model::schema::TableSchema::from_stored(&value.to_string())
        .map_err(|e| StoreError::Database(format!("stored schema unreadable: {e}")))
}

/// A table's stored schema, if the workspace has that table.
pub(super) fn stored_schema(
    tx: &mut Transaction<'_>,
    workspace_id: Uuid,
    name: &str,
) -> StoreResult<Option<TableSchema>> {
    match tx.query_opt(
        "SELECT schema FROM intake_tables WHERE workspace_id = $1 AND name = $2",
        &[&workspace_id, &name],
    )? {
        Some(row) => Ok(Some(schema_from_json(row.try_get(0)?)?)),
        None => Ok(None),
    }
}

pub(super) fn list(tx: &mut Transaction<'_>, ws: &Workspace) -> StoreResult<Vec<TableRecord>> {
    let rows = tx.query(
        "SELECT name, schema, created_at FROM intake_tables WHERE workspace_id = $1
         ORDER BY name COLLATE \"C\"",
        &[&ws.id],
    )?;
    rows.iter()
        .map(|r| {
            let name: String = r.try_get(0)?;
            Ok(TableRecord {
                schema: schema_from_json(r.try_get(1)?)?,
                physical_name: display_name(&ws.slug, &name),
                created_at: r.try_get(2)?,
                row_count: None,
            })
        })
        .collect()
}

pub(super) fn get(
    tx: &mut Transaction<'_>,
    ws: &Workspace,
    name: &str,
    with_count: bool,
) -> StoreResult<TableRecord> {
    let row = tx
        .query_opt(
            "SELECT schema, created_at FROM intake_tables WHERE workspace_id = $1 AND name = $2",
            &[&ws.id, &name],
        )?
        .ok_or(StoreError::NotFound("table"))?;
    let row_count = if with_count {
        let n: i64 = tx
            .query_one(
                &format!("SELECT count(*) FROM {}", qualified(&ws.slug, name)),
                &[],
            )?
            .try_get(0)?;
        Some(n.max(0) as u64)
    } else {
        None
    };
    Ok(TableRecord {
        schema: schema_from_json(row.try_get(0)?)?,
        physical_name: display_name(&ws.slug, name),
        created_at: row.try_get(1)?,
        row_count,
    })
}

/// Every table kept beside `table` (undo copies, a stopped import's side tables).
pub(super) fn side_tables(
    tx: &mut Transaction<'_>,
    slug: &str,
    table: &str,
) -> StoreResult<Vec<String>> {
    let prefix = side_prefix(table);
    let patterns: Vec<String> = SIDE_KINDS
        .iter()
        .map(|k| format!("{prefix}__{k}_"))
        .collect();
    let rows = tx.query(
        "SELECT tablename::text FROM pg_catalog.pg_tables
         WHERE schemaname = $1 AND tablename::text ^@ ANY ($2::text[])",
        &[&slug, &patterns],
    )?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

pub(super) fn delete(tx: &mut Transaction<'_>, ws: &Workspace, name: &str) -> StoreResult<()> {
    get(tx, ws, name, false)?;
    let busy = tx.query_opt(
        "SELECT i.id FROM intake_import_tables t JOIN intake_imports i ON i.id = t.import_id
         WHERE i.workspace_id = $1 AND t.table_name = $2
           AND i.status IN ('new', 'queued', 'processing', 'rolling_back') LIMIT 1",
        &[&ws.id, &name],
    )?;
    if let Some(row) = busy {
        let id: Uuid = row.try_get(0)?;
        return Err(Refusal::TableInUse {
            name: name.to_owned(),
            import: id.to_string(),
        }
        .into());
    }
    tx.execute(
        "DELETE FROM intake_tables WHERE workspace_id = $1 AND name = $2",
        &[&ws.id, &name],
    )?;
    // Undo copies kept by replace imports, and anything a stopped import loaded on the side,
    // go with the table.
    let copies = side_tables(tx, &ws.slug, name)?;
    for copy in copies
        .iter()
        .map(String::as_str)
        .chain(std::iter::once(name))
    {
        tx.batch_execute(&format!(
            "DROP TABLE IF EXISTS {}",
            qualified(&ws.slug, copy)
        ))?;
    }
    Ok(())
}

pub(super) fn read_records(
    tx: &mut Transaction<'_>,
    ws: &Workspace,
    schema: &TableSchema,
    after: Option<i64>,
    limit: u32,
) -> StoreResult<RecordsPage> {
    let cols: Vec<String> = schema.columns.iter().map(|c| read_expr("", c)).collect();
    let order = order_expr(schema);
    let sql = format!(
        "SELECT {order}, {} FROM {} WHERE {order} > $1 ORDER BY {order} LIMIT $2",
        cols.join(", "),
        qualified(&ws.slug, schema.name.as_str())
    );
    let rows = tx.query(&sql, &[&after.unwrap_or(i64::MIN), &(i64::from(limit) + 1)])?;
    let mut out = Vec::with_capacity(rows.len().min(limit as usize));
    let mut last = None;
    let more = rows.len() > limit as usize;
    for r in rows.iter().take(limit as usize) {
        last = Some(r.try_get::<_, i64>(0)?);
        let mut obj = serde_json::Map::with_capacity(schema.columns.len());
        for (i, col) in schema.columns.iter().enumerate() {
            obj.insert(
                col.name.as_str().to_owned(),
                cell_to_json(col.ty, r, i + 1)?,
            );
        }
        out.push(obj);
    }
    Ok(RecordsPage {
        rows: out,
        next: if more { last } else { None },
    })
}
