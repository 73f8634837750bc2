//! Typed import searches on SQLite. Every field maps to a fixed SQL expression below; values
//! are always bound parameters.

use rusqlite::Connection;
use rusqlite::types::Value as Sql;
use uuid::Uuid;

use super::values::ts;
use super::{StoreResult, imports};
use crate::store::search::{after_sql, condition_sql, effective_order};
use crate::store::{
    FieldKind, FilterOp, FilterValue, ImportField, ImportFilter, ImportSearch, SearchPage, SortKey,
    SortSpec,
};

/// The SQL expression of a field over `intake_imports i`.
fn expr(field: ImportField) -> &'static str {
    field.sql()
}

/// The expression a field sorts by: nullable fields with nulls replaced by a value below
/// every real one (so that keyset comparisons agree with the order). Non-null fields stay
/// bare so that their indexes serve the order.
fn sort_expr(field: ImportField) -> String {
    if !field.nullable() {
        return expr(field).to_owned();
    }
    match field.kind() {
        FieldKind::Integer => format!("coalesce({}, -1)", expr(field)),
        FieldKind::Text | FieldKind::Time => format!("coalesce({}, '')", expr(field)),
    }
}

fn bind(v: &FilterValue) -> Sql {
    match v {
        FilterValue::Text(s) => Sql::Text(s.clone()),
        FilterValue::Integer(n) => Sql::Integer(*n),
        FilterValue::Time(t) => Sql::Text(ts(*t)),
    }
}

/// The sort-key value of a keyset position (nulls as the sort expression's null stand-in).
fn bind_key(field: ImportField, v: &Option<FilterValue>) -> Sql {
    match v {
        Some(v) => bind(v),
        None if field.kind() == FieldKind::Integer => Sql::Integer(-1),
        None => Sql::Text(String::new()),
    }
}

fn list(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// One comparison as SQL; its values are appended to `args` in the order of their `?`.
fn filter_sql(args: &mut Vec<Sql>, f: &ImportFilter) -> String {
    let e = expr(f.field);
    match &f.op {
        FilterOp::Eq(v) => {
            args.push(bind(v));
            format!("{e} = ?")
        }
        FilterOp::NotEq(v) => {
            args.push(bind(v));
            format!("{e} <> ?")
        }
        FilterOp::In(vs) if vs.is_empty() => "0".to_owned(),
        FilterOp::In(vs) => {
            args.extend(vs.iter().map(bind));
            format!("{e} IN ({})", list(vs.len()))
        }
        FilterOp::NotIn(vs) if vs.is_empty() => format!("{e} IS NOT NULL"),
        FilterOp::NotIn(vs) => {
            args.extend(vs.iter().map(bind));
            format!("{e} NOT IN ({})", list(vs.len()))
        }
        FilterOp::Gt(v) | FilterOp::Gte(v) | FilterOp::Lt(v) | FilterOp::Lte(v) => {
            let op = match &f.op {
                FilterOp::Gt(_) => ">",
                FilterOp::Gte(_) => ">=",
                FilterOp::Lt(_) => "<",
                _ => "<=",
            };
            args.push(bind(v));
            format!("{e} {op} ?")
        }
        // instr/substr rather than LIKE: exact, case-sensitive, and nothing to escape.
        FilterOp::StartsWith(s) | FilterOp::EndsWith(s) | FilterOp::Contains(s) if s.is_empty() => {
            format!("{e} IS NOT NULL")
        }
        FilterOp::StartsWith(s) => {
            args.push(Sql::Text(s.clone()));
            format!("instr(CAST({e} AS TEXT), ?) = 1")
        }
        FilterOp::EndsWith(s) => {
            args.push(Sql::Text(s.clone()));
            args.push(Sql::Text(s.clone()));
            format!("substr(CAST({e} AS TEXT), -length(?)) = ?")
        }
        FilterOp::Contains(s) => {
            args.push(Sql::Text(s.clone()));
            format!("instr(CAST({e} AS TEXT), ?) > 0")
        }
        // Every non-null text starts with, ends with and contains the empty text.
        FilterOp::NotStartsWith(s)
        | FilterOp::NotEndsWith(s)
        | FilterOp::NotContains(s)
        | FilterOp::NotContainsFolded(s)
            if s.is_empty() =>
        {
            "0".to_owned()
        }
        FilterOp::NotStartsWith(s) => {
            args.push(Sql::Text(s.clone()));
            format!("instr(CAST({e} AS TEXT), ?) <> 1")
        }
        FilterOp::NotEndsWith(s) => {
            args.push(Sql::Text(s.clone()));
            args.push(Sql::Text(s.clone()));
            format!("substr(CAST({e} AS TEXT), -length(?)) <> ?")
        }
        FilterOp::NotContains(s) => {
            args.push(Sql::Text(s.clone()));
            format!("instr(CAST({e} AS TEXT), ?) = 0")
        }
        // SQLite's lower() folds ASCII letters only, as the PostgreSQL backend does.
        FilterOp::ContainsFolded(s) => {
            args.push(Sql::Text(s.clone()));
            format!("instr(lower(CAST({e} AS TEXT)), lower(?)) > 0")
        }
        FilterOp::NotContainsFolded(s) => {
            args.push(Sql::Text(s.clone()));
            format!("instr(lower(CAST({e} AS TEXT)), lower(?)) = 0")
        }
        // SQLite's LIKE ignores the case of ASCII letters.
        FilterOp::Like(p) => {
            args.push(Sql::Text(p.clone()));
            format!("CAST({e} AS TEXT) LIKE ? ESCAPE '\\'")
        }
        FilterOp::NotLike(p) => {
            args.push(Sql::Text(p.clone()));
            format!("CAST({e} AS TEXT) NOT LIKE ? ESCAPE '\\'")
        }
        FilterOp::IsNull(true) => format!("{e} IS NULL"),
        FilterOp::IsNull(false) => format!("{e} IS NOT NULL"),
    }
}

/// The ORDER BY clause and its bound values (ranked keys bind their groups).
fn order_by(order: &[SortSpec]) -> (String, Vec<Sql>) {
    let mut args = Vec::new();
    let parts: Vec<String> = order
        .iter()
        .map(|spec| {
            let key = match &spec.key {
                SortKey::Field(f) => sort_expr(*f),
                SortKey::Ranked { field, ranks } => {
                    let mut case = String::from("(CASE");
                    for (rank, group) in ranks.iter().enumerate() {
                        if group.is_empty() {
                            continue;
                        }
                        case.push_str(&format!(
                            " WHEN {} IN ({}) THEN {rank}",
                            expr(*field),
                            list(group.len())
                        ));
                        args.extend(group.iter().map(|v| Sql::Text(v.clone())));
                    }
                    case.push_str(&format!(" ELSE {} END)", ranks.len()));
                    case
                }
            };
            format!("{key} {}", if spec.descending { "DESC" } else { "ASC" })
        })
        .collect();
    (parts.join(", "), args)
}

pub(super) fn search(
    c: &Connection,
    workspace_id: Uuid,
    q: &ImportSearch,
) -> StoreResult<SearchPage> {
    let mut cond = String::from("i.workspace_id = ?");
    let mut args: Vec<Sql> = vec![Sql::Text(workspace_id.to_string())];
    for f in &q.filters {
        cond.push_str(" AND ");
        let sql = filter_sql(&mut args, f);
        cond.push_str(&sql);
    }
    for c in &q.conditions {
        cond.push_str(" AND ");
        let sql = condition_sql(c, ("1", "0"), &mut |f| filter_sql(&mut args, f));
        cond.push_str(&sql);
    }
    let order = effective_order(&q.sort);
    if let Some(after) = &q.after {
        let mut bind = |field, v: &Option<FilterValue>| {
            args.push(bind_key(field, v));
            Ok("?".to_owned())
        };
        cond.push_str(&after_sql(&order, after, &sort_expr, &mut bind)?);
    }
    let total: i64 = c.query_row(
        &format!("SELECT count(*) FROM intake_imports i WHERE {cond}"),
        rusqlite::params_from_iter(args.iter()),
        |r| r.get(0),
    )?;
    let (order_sql, order_args) = order_by(&order);
    let sql = format!(
        "SELECT i.id FROM intake_imports i WHERE {cond} ORDER BY {order_sql} LIMIT ? OFFSET ?"
    );
    args.extend(order_args);
    args.push(Sql::Integer(i64::from(q.limit)));
    args.push(Sql::Integer(i64::try_from(q.offset).unwrap_or(i64::MAX)));
    let mut stmt = c.prepare(&sql)?;
    let ids = stmt
        .query_map(rusqlite::params_from_iter(args.iter()), |r| {
            r.get::<_, String>(0)
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    // One read per import through the shared loader, so that these records are exactly
    // what `get_import` answers (pages are small).
    let imports = ids
        .iter()
        .map(|id| imports::get(c, workspace_id, super::parse_uuid(id)))
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(SearchPage {
        imports,
        total: total.max(0) as u64,
    })
}
