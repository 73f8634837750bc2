//! Typed import searches on PostgreSQL. Every field maps to a fixed SQL expression below;
//! values are always bound parameters. Text compares and sorts byte-wise (`COLLATE "C"`), and
//! times as their fixed-width text would, so that results equal the SQLite backend's.

use ::postgres::Transaction;
use uuid::Uuid;

use super::values::Params;
use super::{StoreError, StoreResult, imports, ms};
use crate::store::search::{after_sql, condition_sql, effective_order};
use crate::store::{
    FieldKind, FilterOp, FilterValue, ImportField, ImportFilter, ImportSearch, SearchPage, SortKey,
    SortSpec,
};

/// The SQL expression of a field over `intake_imports i`; the id as text, as SQLite stores it.
fn expr(field: ImportField) -> &'static str {
    match field {
        ImportField::Id => "i.id::text",
        f => f.sql(),
    }
}

/// The field as an operand of comparisons: text byte-wise.
fn operand(field: ImportField) -> String {
    match field.kind() {
        FieldKind::Text => format!("({}) COLLATE \"C\"", expr(field)),
        _ => expr(field).to_owned(),
    }
}

/// The field's value as text, for substring filters: times in the fixed-width RFC 3339 form
/// the API shows.
fn text_expr(field: ImportField) -> String {
    match field.kind() {
        FieldKind::Time => format!(
            "to_char(({}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
            expr(field)
        ),
        _ => format!("({})::text", expr(field)),
    }
}

/// The expression a field sorts by: nullable fields with nulls replaced by a value below
/// every real one (so that keyset comparisons agree with the order).
fn sort_expr(field: ImportField) -> String {
    if !field.nullable() {
        return operand(field);
    }
    match field.kind() {
        FieldKind::Integer => format!("coalesce({}, -1)", expr(field)),
        FieldKind::Text => format!("coalesce({}, '') COLLATE \"C\"", expr(field)),
        FieldKind::Time => format!("coalesce({}, '-infinity'::timestamptz)", expr(field)),
    }
}

/// The placeholder of a value compared with a field; `None` when the value's kind is not the
/// field's.
fn bind(p: &mut Params, field: ImportField, v: &FilterValue) -> Option<String> {
    match (field.kind(), v) {
        (FieldKind::Text, FilterValue::Text(s)) => Some(p.push(s.clone())),
        (FieldKind::Integer, FilterValue::Integer(n)) => Some(p.push(*n)),
        (FieldKind::Time, FilterValue::Time(t)) => Some(p.push(ms(*t))),
        _ => None,
    }
}

/// The sort-key value of a keyset position (nulls as the sort expression's null stand-in).
fn bind_key(p: &mut Params, field: ImportField, v: &Option<FilterValue>) -> StoreResult<String> {
    match v {
        Some(v) => bind(p, field, v).ok_or_else(|| {
            StoreError::Invalid("a keyset position does not match its order".into())
        }),
        None => Ok(match field.kind() {
            FieldKind::Integer => "-1".to_owned(),
            FieldKind::Text => "''".to_owned(),
            FieldKind::Time => "'-infinity'::timestamptz".to_owned(),
        }),
    }
}

/// One comparison of a field with a value; a value of another kind compares as text.
fn compare(p: &mut Params, field: ImportField, op: &str, v: &FilterValue) -> String {
    match bind(p, field, v) {
        Some(rhs) => format!("{} {op} {rhs}", operand(field)),
        None => {
            let text = match v {
                FilterValue::Text(s) => s.clone(),
                FilterValue::Integer(n) => n.to_string(),
                FilterValue::Time(t) => crate::store::sort_key(*t),
            };
            format!("{} COLLATE \"C\" {op} {}", text_expr(field), p.push(text))
        }
    }
}

/// ASCII letters of a text expression in lower case: SQLite's lower(), so that both backends
/// fold case alike (PostgreSQL's lower() also folds other letters).
fn ascii_lower(e: &str) -> String {
    format!("translate({e}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')")
}

/// One comparison as SQL.
fn filter_sql(p: &mut Params, f: &ImportFilter) -> String {
    let e = expr(f.field);
    match &f.op {
        FilterOp::Eq(v) => compare(p, f.field, "=", v),
        FilterOp::NotEq(v) => compare(p, f.field, "<>", v),
        FilterOp::In(vs) if vs.is_empty() => "false".to_owned(),
        FilterOp::In(vs) => {
            let any: Vec<String> = vs.iter().map(|v| compare(p, f.field, "=", v)).collect();
            format!("({})", any.join(" OR "))
        }
        FilterOp::NotIn(vs) if vs.is_empty() => format!("{e} IS NOT NULL"),
        FilterOp::NotIn(vs) => {
            // Null fields match neither IN nor NOT IN, as in SQL.
            let all: Vec<String> = vs.iter().map(|v| compare(p, f.field, "<>", v)).collect();
            format!("({})", all.join(" AND "))
        }
        FilterOp::Gt(v) => compare(p, f.field, ">", v),
        FilterOp::Gte(v) => compare(p, f.field, ">=", v),
        FilterOp::Lt(v) => compare(p, f.field, "<", v),
        FilterOp::Lte(v) => compare(p, f.field, "<=", v),
        // strpos/right rather than LIKE: exact, case-sensitive, and nothing to escape.
        FilterOp::StartsWith(s) | FilterOp::EndsWith(s) | FilterOp::Contains(s) if s.is_empty() => {
            format!("{e} IS NOT NULL")
        }
        FilterOp::StartsWith(s) => {
            format!("strpos({}, {}) = 1", text_expr(f.field), p.push(s.clone()))
        }
        FilterOp::EndsWith(s) => {
            let v = p.push(s.clone());
            format!("right({}, length({v})) = {v}", text_expr(f.field))
        }
        FilterOp::Contains(s) => {
            format!("strpos({}, {}) > 0", text_expr(f.field), p.push(s.clone()))
        }
        // Every non-null text starts with, ends with and contains the empty text.
        FilterOp::NotStartsWith(s)
        | FilterOp::NotEndsWith(s)
        | FilterOp::NotContains(s)
        | FilterOp::NotContainsFolded(s)
            if s.is_empty() =>
        {
            "false".to_owned()
        }
        FilterOp::NotStartsWith(s) => {
            format!("strpos({}, {}) <> 1", text_expr(f.field), p.push(s.clone()))
        }
        FilterOp::NotEndsWith(s) => {
            let v = p.push(s.clone());
            format!("right({}, length({v})) <> {v}", text_expr(f.field))
        }
        FilterOp::NotContains(s) => {
            format!("strpos({}, {}) = 0", text_expr(f.field), p.push(s.clone()))
        }
        FilterOp::ContainsFolded(s) => format!(
            "strpos({}, {}) > 0",
            ascii_lower(&text_expr(f.field)),
            ascii_lower(&format!("{}::text", p.push(s.clone())))
        ),
        FilterOp::NotContainsFolded(s) => format!(
            "strpos({}, {}) = 0",
            ascii_lower(&text_expr(f.field)),
            ascii_lower(&format!("{}::text", p.push(s.clone())))
        ),
        FilterOp::Like(s) => format!(
            "{} COLLATE \"C\" LIKE {} ESCAPE '\\'",
            ascii_lower(&text_expr(f.field)),
            ascii_lower(&format!("{}::text", p.push(s.clone())))
        ),
        FilterOp::NotLike(s) => format!(
            "{} COLLATE \"C\" NOT LIKE {} ESCAPE '\\'",
            ascii_lower(&text_expr(f.field)),
            ascii_lower(&format!("{}::text", p.push(s.clone())))
        ),
        FilterOp::IsNull(true) => format!("{e} IS NULL"),
        FilterOp::IsNull(false) => format!("{e} IS NOT NULL"),
    }
}

/// The ORDER BY clause (ranked keys bind their groups).
fn order_by(p: &mut Params, order: &[SortSpec]) -> String {
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
                        let values = p.push(group.clone());
                        case.push_str(&format!(
                            " WHEN ({})::text = ANY ({values}::text[]) THEN {rank}",
                            expr(*field)
                        ));
                    }
                    case.push_str(&format!(" ELSE {} END)", ranks.len()));
                    case
                }
            };
            format!("{key} {}", if spec.descending { "DESC" } else { "ASC" })
        })
        .collect();
    parts.join(", ")
}

pub(super) fn search(
    tx: &mut Transaction<'_>,
    workspace_id: Uuid,
    q: &ImportSearch,
) -> StoreResult<SearchPage> {
    let mut p = Params::default();
    let mut cond = format!("i.workspace_id = {}", p.push(workspace_id));
    for f in &q.filters {
        cond.push_str(" AND ");
        let sql = filter_sql(&mut p, f);
        cond.push_str(&sql);
    }
    for c in &q.conditions {
        cond.push_str(" AND ");
        let sql = condition_sql(c, ("true", "false"), &mut |f| filter_sql(&mut p, f));
        cond.push_str(&sql);
    }
    let order = effective_order(&q.sort);
    if let Some(after) = &q.after {
        let mut bind = |field, v: &Option<FilterValue>| bind_key(&mut p, field, v);
        cond.push_str(&after_sql(&order, after, &sort_expr, &mut bind)?);
    }
    let total: i64 = tx
        .query_one(
            &format!("SELECT count(*) FROM intake_imports i WHERE {cond}"),
            &p.refs(),
        )?
        .try_get(0)?;
    let order_sql = order_by(&mut p, &order);
    let limit = p.push(i64::from(q.limit));
    let offset = p.push(i64::try_from(q.offset).unwrap_or(i64::MAX));
    let sql = format!(
        "SELECT i.id FROM intake_imports i WHERE {cond} ORDER BY {order_sql}
         LIMIT {limit} OFFSET {offset}"
    );
    let ids: Vec<Uuid> = tx
        .query(&sql, &p.refs())?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    // Through the shared loader, so that these records are exactly what `get_import`
    // answers.
    let imports = imports::get_many(tx, workspace_id, &ids)?;
    Ok(SearchPage {
        imports,
        total: total.max(0) as u64,
    })
}
