//! Managed tables: their definitions and the real SQLite tables behind them.
//! A table `orders` of workspace `default` is the SQLite table `default__orders`; every table
//! also has an `_intake_import` column: the number of the import that last wrote the row.

use rusqlite::{Connection, OptionalExtension, params};

use super::values::{cell_to_json, declared_type, parse_ts, quote, ts};
use super::{StoreError, StoreResult, now};
use crate::model::{ColumnSpec, Refusal, TableSchema};
use crate::store::ddl::column_defs;
use crate::store::{RecordsPage, TableRecord, Workspace};

pub use crate::store::columns::IMPORT_COLUMN;

/// The table's name inside the database.
pub fn physical_name(ws: &Workspace, table: &str) -> String {
    physical_name_in(&ws.slug, table)
}

/// The slug of a workspace, which prefixes its tables' names.
pub(super) fn workspace_slug(c: &Connection, workspace_id: uuid::Uuid) -> StoreResult<String> {
    Ok(c.query_row(
        "SELECT slug FROM intake_workspaces WHERE id = ?1",
        [workspace_id.to_string()],
        |r| r.get(0),
    )?)
}

/// The table's name inside the database, from the workspace's slug.
pub fn physical_name_in(slug: &str, table: &str) -> String {
    format!("{slug}__{table}")
}

/// The `CREATE TABLE` statement of a schema under a given physical name.
pub fn create_sql(name: &str, schema: &TableSchema) -> String {
    let import = format!("{} INTEGER NOT NULL", quote(IMPORT_COLUMN));
    let cols = column_defs(schema, |c| declared_type(c.ty).to_owned(), &[import]);
    format!(
        "CREATE TABLE {} (\n  {}\n)",
        quote(name),
        cols.join(",\n  ")
    )
}

pub(super) fn create(
    tx: &Connection,
    ws: &Workspace,
    schema: &TableSchema,
) -> StoreResult<TableRecord> {
    let name = schema.name.as_str();
    let exists: Option<i64> = tx
        .query_row(
            "SELECT 1 FROM intake_tables WHERE workspace_id = ?1 AND name = ?2",
            params![ws.id.to_string(), name],
            |r| r.get(0),
        )
        .optional()?;
    if exists.is_some() {
        return Err(Refusal::TableExists(name.to_owned()).into());
    }
    let physical = physical_name(ws, name);
    // The time as stored (milliseconds), so the answer to create matches later reads.
    let created_at = parse_ts(&ts(now()));
    let schema_json = serde_json::to_string(schema)
        .map_err(|e| StoreError::Database(format!("schema encoding: {e}")))?;
    tx.execute(
        "INSERT INTO intake_tables (workspace_id, name, schema, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![ws.id.to_string(), name, schema_json, ts(created_at)],
    )?;
    // A leftover table of the same name (created outside Intake) is an error, not adopted.
    tx.execute_batch(&create_sql(&physical, schema))
        .map_err(|e| {
            StoreError::from(Refusal::TableLeftOver {
                name: name.to_owned(),
                why: e.to_string(),
            })
        })?;
    Ok(TableRecord {
        schema: schema.clone(),
        physical_name: physical,
        created_at,
        row_count: Some(0),
    })
}

/// Adds nullable columns to a table, in one transaction with its stored schema.
pub(super) fn add_columns(
    tx: &Connection,
    ws: &Workspace,
    name: &str,
    columns: &[ColumnSpec],
) -> StoreResult<TableRecord> {
    let stored: Option<(String, String)> = tx
        .query_row(
            "SELECT schema, created_at FROM intake_tables WHERE workspace_id = ?1 AND name = ?2",
            params![ws.id.to_string(), name],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((text, created_at)) = stored else {
        return Err(StoreError::NotFound("table"));
    };
    let mut schema = schema_from_json(&text)?;
    let physical = physical_name(ws, name);
    for column in schema.columns_to_add(columns) {
        tx.execute_batch(&format!(
            "ALTER TABLE {} ADD COLUMN {} {}",
            quote(&physical),
            quote(column.name.as_str()),
            declared_type(column.ty)
        ))?;
        schema.columns.push(column);
    }
    let schema_json = serde_json::to_string(&schema)
        .map_err(|e| StoreError::Database(format!("schema encoding: {e}")))?;
    tx.execute(
        "UPDATE intake_tables SET schema = ?3 WHERE workspace_id = ?1 AND name = ?2",
        params![ws.id.to_string(), name, schema_json],
    )?;
    Ok(TableRecord {
        schema,
        physical_name: physical,
        created_at: parse_ts(&created_at),
        row_count: None,
    })
}

fn schema_from_json(text: &str) -> StoreResult<TableSchema> {
    crate::model::schema::TableSchema::from_stored(text)
        .map_err(|e| StoreError::Database(format!("stored schema unreadable: {e}")))
}

pub(super) fn list(c: &Connection, ws: &Workspace) -> StoreResult<Vec<TableRecord>> {
    let mut stmt = c.prepare_cached(
        "SELECT name, schema, created_at FROM intake_tables WHERE workspace_id = ?1 ORDER BY name",
    )?;
    let rows = stmt.query_map([ws.id.to_string()], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (name, schema, created_at) = row?;
        out.push(TableRecord {
            schema: schema_from_json(&schema)?,
            physical_name: physical_name(ws, &name),
            created_at: parse_ts(&created_at),
            row_count: None,
        });
    }
    Ok(out)
}

pub(super) fn get(
    c: &Connection,
    ws: &Workspace,
    name: &str,
    with_count: bool,
) -> StoreResult<TableRecord> {
    let (schema, created_at): (String, String) = c
        .prepare_cached(
            "SELECT schema, created_at FROM intake_tables WHERE workspace_id = ?1 AND name = ?2",
        )?
        .query_row(params![ws.id.to_string(), name], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?
        .ok_or(StoreError::NotFound("table"))?;
    let physical = physical_name(ws, name);
    let row_count = if with_count {
        let n: i64 = c.query_row(
            &format!("SELECT count(*) FROM {}", quote(&physical)),
            [],
            |r| r.get(0),
        )?;
        Some(n as u64)
    } else {
        None
    };
    Ok(TableRecord {
        schema: schema_from_json(&schema)?,
        physical_name: physical,
        created_at: parse_ts(&created_at),
        row_count,
    })
}

pub(super) fn delete(tx: &Connection, ws: &Workspace, name: &str) -> StoreResult<()> {
    get(tx, ws, name, false)?;
    let busy: Option<String> = tx
        .query_row(
            "SELECT i.id FROM intake_import_tables t JOIN intake_imports i ON i.id = t.import_id
             WHERE i.workspace_id = ?1 AND t.table_name = ?2
               AND i.status IN ('new', 'queued', 'processing', 'rolling_back') LIMIT 1",
            params![ws.id.to_string(), name],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(id) = busy {
        return Err(Refusal::TableInUse {
            name: name.to_owned(),
            import: id.to_string(),
        }
        .into());
    }
    tx.execute(
        "DELETE FROM intake_tables WHERE workspace_id = ?1 AND name = ?2",
        params![ws.id.to_string(), name],
    )?;
    let physical = physical_name(ws, name);
    // Undo copies kept by replace imports, and anything a stopped import loaded on the side,
    // go with the table.
    let copies: Vec<String> = {
        let mut stmt = tx.prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table'
             AND (name GLOB ?1 || '__undo_*' OR name GLOB ?1 || '__replace_*'
                  OR name GLOB ?1 || '__seen_*' OR name GLOB ?1 || '__journal_*')",
        )?;
        let rows = stmt.query_map([&physical], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for copy in copies.iter().chain(std::iter::once(&physical)) {
        tx.execute_batch(&format!("DROP TABLE IF EXISTS {}", quote(copy)))?;
    }
    Ok(())
}

pub(super) fn read_records(
    c: &Connection,
    ws: &Workspace,
    schema: &TableSchema,
    after: Option<i64>,
    limit: u32,
) -> StoreResult<RecordsPage> {
    let cols: Vec<String> = schema
        .columns
        .iter()
        .map(|c| quote(c.name.as_str()))
        .collect();
    let sql = format!(
        "SELECT rowid, {} FROM {} WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
        cols.join(", "),
        quote(&physical_name(ws, schema.name.as_str()))
    );
    let mut stmt = c.prepare(&sql)?;
    let mut rows = stmt.query(params![after.unwrap_or(i64::MIN), i64::from(limit) + 1])?;
    let mut out = Vec::new();
    let mut last = None;
    let mut more = false;
    while let Some(r) = rows.next()? {
        if out.len() == limit as usize {
            more = true;
            break;
        }
        last = Some(r.get::<_, i64>(0)?);
        let mut obj = serde_json::Map::with_capacity(schema.columns.len());
        for (i, col) in schema.columns.iter().enumerate() {
            obj.insert(
                col.name.as_str().to_owned(),
                cell_to_json(col.ty, r.get_ref(i + 1)?),
            );
        }
        out.push(obj);
    }
    Ok(RecordsPage {
        rows: out,
        next: if more { last } else { None },
    })
}

/// The table a replace keeps the previous rows in, to roll back.
pub fn undo_table(table: &str, number: i64) -> String {
    format!("{table}__undo_{number}")
}

/// Whether a table of this name exists in the database.
pub fn table_exists(tx: &Connection, name: &str) -> StoreResult<bool> {
    Ok(tx
        .prepare_cached("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1")?
        .exists([name])?)
}

/// The table an upsert journals the rows it changes in (each row's version before the
/// import first touched it), to roll back.
pub fn journal_table(table: &str, number: i64) -> String {
    format!("{table}__journal_{number}")
}
