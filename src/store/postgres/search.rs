//! Typed import searches on PostgreSQL. Every field maps to a fixed SQL expression below;
//! values are always bound parameters. Text compares and sorts byte-wise (`COLLATE "C"`), and
//! times as their fixed-width text would, so that results equal the SQLite backend's.

use ::postgres::Transaction;
use uuid::Uuid;

use super::values::Params;
use super::{StoreError, StoreResult, imports, ms};
use crate::store::search::{SearchSql, statements};
use crate::store::{
    FieldKind, FilterOp, FilterValue, ImportField, ImportFilter, ImportSearch, SearchPage,
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

impl SearchSql for Params {
    const TRUTH: (&'static str, &'static str) = ("true", "false");

    fn bind_workspace(&mut self, id: Uuid) -> String {
        self.push(id)
    }

    fn bind_int(&mut self, n: i64) -> String {
        self.push(n)
    }

    fn bound(&self) -> usize {
        self.len()
    }

    fn filter(&mut self, f: &ImportFilter) -> String {
        let e = expr(f.field);
        let t = text_expr(f.field);
        match &f.op {
            FilterOp::Eq(v) => compare(self, f.field, "=", v),
            FilterOp::NotEq(v) => compare(self, f.field, "<>", v),
            FilterOp::In(vs) if vs.is_empty() => "false".to_owned(),
            FilterOp::In(vs) => {
                let any: Vec<String> = vs.iter().map(|v| compare(self, f.field, "=", v)).collect();
                format!("({})", any.join(" OR "))
            }
            FilterOp::NotIn(vs) if vs.is_empty() => format!("{e} IS NOT NULL"),
            FilterOp::NotIn(vs) => {
                // Null fields match neither IN nor NOT IN, as in SQL.
                let all: Vec<String> = vs.iter().map(|v| compare(self, f.field, "<>", v)).collect();
                format!("({})", all.join(" AND "))
            }
            FilterOp::Gt(v) => compare(self, f.field, ">", v),
            FilterOp::Gte(v) => compare(self, f.field, ">=", v),
            FilterOp::Lt(v) => compare(self, f.field, "<", v),
            FilterOp::Lte(v) => compare(self, f.field, "<=", v),
            // strpos/right rather than LIKE: exact, case-sensitive, and nothing to escape.
            FilterOp::StartsWith(s) | FilterOp::EndsWith(s) | FilterOp::Contains(s)
                if s.is_empty() =>
            {
                format!("{e} IS NOT NULL")
            }
            FilterOp::StartsWith(s) => format!("strpos({t}, {}) = 1", self.push(s.clone())),
            FilterOp::EndsWith(s) => {
                let v = self.push(s.clone());
                format!("right({t}, length({v})) = {v}")
            }
            FilterOp::Contains(s) => format!("strpos({t}, {}) > 0", self.push(s.clone())),
            // Every non-null text starts with, ends with and contains the empty text.
            FilterOp::NotStartsWith(s)
            | FilterOp::NotEndsWith(s)
            | FilterOp::NotContains(s)
            | FilterOp::NotContainsFolded(s)
                if s.is_empty() =>
            {
                "false".to_owned()
            }
            FilterOp::NotStartsWith(s) => format!("strpos({t}, {}) <> 1", self.push(s.clone())),
            FilterOp::NotEndsWith(s) => {
                let v = self.push(s.clone());
                format!("right({t}, length({v})) <> {v}")
            }
            FilterOp::NotContains(s) => format!("strpos({t}, {}) = 0", self.push(s.clone())),
            FilterOp::ContainsFolded(s) | FilterOp::NotContainsFolded(s) => {
                let found = if matches!(f.op, FilterOp::ContainsFolded(_)) {
                    "> 0"
                } else {
                    "= 0"
                };
                let v = ascii_lower(&format!("{}::text", self.push(s.clone())));
                format!("strpos({}, {v}) {found}", ascii_lower(&t))
            }
            FilterOp::Like(s) | FilterOp::NotLike(s) => {
                let not = if matches!(f.op, FilterOp::NotLike(_)) {
                    "NOT "
                } else {
                    ""
                };
                let v = ascii_lower(&format!("{}::text", self.push(s.clone())));
                format!(
                    "{} COLLATE \"C\" {not}LIKE {v} ESCAPE '\\'",
                    ascii_lower(&t)
                )
            }
            FilterOp::IsNull(true) => format!("{e} IS NULL"),
            FilterOp::IsNull(false) => format!("{e} IS NOT NULL"),
        }
    }

    fn sort_expr(field: ImportField) -> String {
        sort_expr(field)
    }

    fn bind_key(&mut self, field: ImportField, v: &Option<FilterValue>) -> StoreResult<String> {
        match v {
            Some(v) => bind(self, field, v).ok_or_else(|| {
                StoreError::Invalid("a keyset position does not match its order".into())
            }),
            None => Ok(match field.kind() {
                FieldKind::Integer => "-1".to_owned(),
                FieldKind::Text => "''".to_owned(),
                FieldKind::Time => "'-infinity'::timestamptz".to_owned(),
            }),
        }
    }

    fn in_group(&mut self, field: ImportField, group: &[String]) -> String {
        let values = self.push(group.to_vec());
        format!("({})::text = ANY ({values}::text[])", expr(field))
    }
}

pub(super) fn search(
    tx: &mut Transaction<'_>,
    workspace_id: Uuid,
    q: &ImportSearch,
) -> StoreResult<SearchPage> {
    let mut p = Params::default();
    let sql = statements(&mut p, workspace_id, q)?;
    let params = p.refs();
    let total: i64 = tx
        .query_one(&sql.count, &params[..sql.count_params])?
        .try_get(0)?;
    let ids: Vec<Uuid> = tx
        .query(&sql.page, &params)?
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
