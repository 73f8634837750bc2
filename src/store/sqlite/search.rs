//! Typed import searches on SQLite. Every field maps to a fixed SQL expression below; values
//! are always bound parameters.

use rusqlite::Connection;
use rusqlite::types::Value as Sql;
use uuid::Uuid;

use super::values::ts;
use super::{StoreResult, imports};
use crate::store::search::{SearchSql, statements};
use crate::store::{
    FieldKind, FilterOp, FilterValue, ImportField, ImportFilter, ImportSearch, SearchPage,
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

/// The values a search binds, numbered `?1`, `?2`, ... in the order they are bound.
#[derive(Default)]
struct Binds(Vec<Sql>);

impl Binds {
    fn push(&mut self, v: Sql) -> String {
        self.0.push(v);
        format!("?{}", self.0.len())
    }

    fn text(&mut self, s: &str) -> String {
        self.push(Sql::Text(s.to_owned()))
    }

    fn value(&mut self, v: &FilterValue) -> String {
        self.push(bind(v))
    }

    fn list(&mut self, vs: &[FilterValue]) -> String {
        let placeholders: Vec<String> = vs.iter().map(|v| self.value(v)).collect();
        placeholders.join(", ")
    }
}

impl SearchSql for Binds {
    const TRUTH: (&'static str, &'static str) = ("1", "0");

    fn bind_workspace(&mut self, id: Uuid) -> String {
        self.push(Sql::Text(id.to_string()))
    }

    fn bind_int(&mut self, n: i64) -> String {
        self.push(Sql::Integer(n))
    }

    fn bound(&self) -> usize {
        self.0.len()
    }

    fn filter(&mut self, f: &ImportFilter) -> String {
        let e = expr(f.field);
        let t = format!("CAST({e} AS TEXT)");
        match &f.op {
            FilterOp::Eq(v) => format!("{e} = {}", self.value(v)),
            FilterOp::NotEq(v) => format!("{e} <> {}", self.value(v)),
            FilterOp::In(vs) if vs.is_empty() => "0".to_owned(),
            FilterOp::In(vs) => format!("{e} IN ({})", self.list(vs)),
            FilterOp::NotIn(vs) if vs.is_empty() => format!("{e} IS NOT NULL"),
            FilterOp::NotIn(vs) => format!("{e} NOT IN ({})", self.list(vs)),
            FilterOp::Gt(v) | FilterOp::Gte(v) | FilterOp::Lt(v) | FilterOp::Lte(v) => {
                let op = match &f.op {
                    FilterOp::Gt(_) => ">",
                    FilterOp::Gte(_) => ">=",
                    FilterOp::Lt(_) => "<",
                    _ => "<=",
                };
                format!("{e} {op} {}", self.value(v))
            }
            // instr/substr rather than LIKE: exact, case-sensitive, and nothing to escape.
            FilterOp::StartsWith(s) | FilterOp::EndsWith(s) | FilterOp::Contains(s)
                if s.is_empty() =>
            {
                format!("{e} IS NOT NULL")
            }
            FilterOp::StartsWith(s) => format!("instr({t}, {}) = 1", self.text(s)),
            FilterOp::EndsWith(s) => {
                let v = self.text(s);
                format!("substr({t}, -length({v})) = {v}")
            }
            FilterOp::Contains(s) => format!("instr({t}, {}) > 0", self.text(s)),
            // Every non-null text starts with, ends with and contains the empty text.
            FilterOp::NotStartsWith(s)
            | FilterOp::NotEndsWith(s)
            | FilterOp::NotContains(s)
            | FilterOp::NotContainsFolded(s)
                if s.is_empty() =>
            {
                "0".to_owned()
            }
            FilterOp::NotStartsWith(s) => format!("instr({t}, {}) <> 1", self.text(s)),
            FilterOp::NotEndsWith(s) => {
                let v = self.text(s);
                format!("substr({t}, -length({v})) <> {v}")
            }
            FilterOp::NotContains(s) => format!("instr({t}, {}) = 0", self.text(s)),
            // SQLite's lower() folds ASCII letters only, as the PostgreSQL backend does.
            FilterOp::ContainsFolded(s) | FilterOp::NotContainsFolded(s) => {
                let found = if matches!(f.op, FilterOp::ContainsFolded(_)) {
                    "> 0"
                } else {
                    "= 0"
                };
                format!("instr(lower({t}), lower({})) {found}", self.text(s))
            }
            // SQLite's LIKE ignores the case of ASCII letters.
            FilterOp::Like(p) => format!("{t} LIKE {} ESCAPE '\\'", self.text(p)),
            FilterOp::NotLike(p) => format!("{t} NOT LIKE {} ESCAPE '\\'", self.text(p)),
            FilterOp::IsNull(true) => format!("{e} IS NULL"),
            FilterOp::IsNull(false) => format!("{e} IS NOT NULL"),
        }
    }

    fn sort_expr(field: ImportField) -> String {
        sort_expr(field)
    }

    fn bind_key(&mut self, field: ImportField, v: &Option<FilterValue>) -> StoreResult<String> {
        Ok(match v {
            Some(v) => self.value(v),
            None if field.kind() == FieldKind::Integer => self.push(Sql::Integer(-1)),
            None => self.push(Sql::Text(String::new())),
        })
    }

    fn in_group(&mut self, field: ImportField, group: &[String]) -> String {
        let values: Vec<String> = group.iter().map(|v| self.text(v)).collect();
        format!("{} IN ({})", expr(field), values.join(", "))
    }
}

pub(super) fn search(
    c: &Connection,
    workspace_id: Uuid,
    q: &ImportSearch,
) -> StoreResult<SearchPage> {
    let mut binds = Binds::default();
    let sql = statements(&mut binds, workspace_id, q)?;
    let total: i64 = c.query_row(
        &sql.count,
        rusqlite::params_from_iter(&binds.0[..sql.count_params]),
        |r| r.get(0),
    )?;
    let mut stmt = c.prepare(&sql.page)?;
    let ids = stmt
        .query_map(rusqlite::params_from_iter(binds.0.iter()), |r| {
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
