//! Typed import searches, for list routes richer than the native one (the compatibility
//! dialects): filters, multi-key orders, offset or keyset pages and a match count. Callers map
//! the field names users send onto [`ImportField`], a fixed list; only the store turns a field
//! into SQL, so no user text ever becomes part of a statement.

use time::OffsetDateTime;
use uuid::Uuid;

use super::{ImportRecord, StoreResult};

/// A field of an import that searches can filter and sort on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImportField {
    /// The import's id (UUIDv7 text: sorts by creation).
    Id,
    /// The per-workspace sequence number.
    Number,
    /// The status name.
    Status,
    /// The table of the import's first input.
    Table,
    /// The format of the import's first input (`csv`, `tsv`, `ndjson`, `json`).
    Format,
    /// The import's platform label.
    Platform,
    Reference,
    ReferenceOrigin,
    CreatedAt,
    UpdatedAt,
    StartedAt,
    /// When the import ended (any final status).
    CompletedAt,
    /// When an import that did not complete stopped: `cancelled_at` of a cancelled import,
    /// `rolled_back_at` of a rolled-back one, `completed_at` of a failed or unsupported one;
    /// null for every other status.
    StoppedAt,
    /// Rows in the source (null until known).
    Inputs,
    Processed,
    Invalid,
    Warnings,
    Destroyed,
}

/// How a field's values compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Text,
    Integer,
    Time,
}

impl ImportField {
    /// The SQL expression of the field over `intake_imports i`, the same on both backends
    /// (PostgreSQL compares `id` as text: see its search).
    pub(crate) fn sql(self) -> &'static str {
        use ImportField::*;
        match self {
            Id => "i.id",
            Number => "i.number",
            Status => "i.status",
            Table => {
                "(SELECT t.table_name FROM intake_import_tables t \
                 WHERE t.import_id = i.id AND t.position = 0)"
            }
            Format => {
                "(SELECT t.format FROM intake_import_tables t \
                 WHERE t.import_id = i.id AND t.position = 0)"
            }
            Platform => "i.platform",
            Reference => "i.reference",
            ReferenceOrigin => "i.reference_origin",
            CreatedAt => "i.created_at",
            UpdatedAt => "i.updated_at",
            StartedAt => "i.started_at",
            CompletedAt => "i.completed_at",
            StoppedAt => {
                "(CASE i.status WHEN 'cancelled' THEN i.cancelled_at \
                 WHEN 'rolled_back' THEN i.rolled_back_at \
                 WHEN 'failed' THEN i.completed_at WHEN 'unsupported' THEN i.completed_at END)"
            }
            Inputs => "i.inputs",
            Processed => "i.processed",
            Invalid => "i.invalid",
            Warnings => "i.warnings",
            Destroyed => "i.destroyed",
        }
    }

    /// How the field's values compare.
    pub fn kind(self) -> FieldKind {
        use ImportField::*;
        match self {
            Id | Status | Table | Format | Platform | Reference | ReferenceOrigin => {
                FieldKind::Text
            }
            Number | Inputs | Processed | Invalid | Warnings | Destroyed => FieldKind::Integer,
            CreatedAt | UpdatedAt | StartedAt | CompletedAt | StoppedAt => FieldKind::Time,
        }
    }

    /// Whether the field can be null (nulls sort first in ascending order).
    pub fn nullable(self) -> bool {
        use ImportField::*;
        matches!(
            self,
            Table
                | Format
                | Platform
                | Reference
                | ReferenceOrigin
                | StartedAt
                | CompletedAt
                | StoppedAt
                | Inputs
        )
    }
}

/// A value to compare a field with.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterValue {
    Text(String),
    Integer(i64),
    Time(OffsetDateTime),
}

/// A comparison. Comparisons with null follow SQL: only `IsNull` matches a null field.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterOp {
    Eq(FilterValue),
    NotEq(FilterValue),
    /// Any of the values (none: matches nothing).
    In(Vec<FilterValue>),
    /// None of the values (none: matches every non-null value).
    NotIn(Vec<FilterValue>),
    Gt(FilterValue),
    Gte(FilterValue),
    Lt(FilterValue),
    Lte(FilterValue),
    /// The value's text starts with this (case-sensitive).
    StartsWith(String),
    /// The value's text ends with this (case-sensitive).
    EndsWith(String),
    /// The value's text contains this (case-sensitive).
    Contains(String),
    /// The value's text does not start with this (a null field matches no comparison).
    NotStartsWith(String),
    /// The value's text does not end with this.
    NotEndsWith(String),
    /// The value's text does not contain this.
    NotContains(String),
    /// The value's text contains this, ASCII letters compared without case.
    ContainsFolded(String),
    /// The value's text does not contain this, ASCII letters compared without case.
    NotContainsFolded(String),
    /// The value's text matches this SQL `LIKE` pattern (`%` any text, `_` one character,
    /// `\` escapes), ASCII letters compared without case.
    Like(String),
    /// The value's text does not match this `LIKE` pattern.
    NotLike(String),
    /// `true`: the field is null; `false`: it is not.
    IsNull(bool),
}

/// One condition; a search's conditions must all hold.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportFilter {
    pub field: ImportField,
    pub op: FilterOp,
}

/// Filters combined with AND and OR, for callers whose users write combinations (a vendor's
/// `a_or_b_gt` predicates).
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// One comparison.
    Filter(ImportFilter),
    /// Every condition holds (none: true).
    All(Vec<Condition>),
    /// At least one condition holds (none: false).
    Any(Vec<Condition>),
}

/// What to sort by.
#[derive(Debug, Clone, PartialEq)]
pub enum SortKey {
    /// The field's own order (nulls first when ascending).
    Field(ImportField),
    /// The field's values by group: values of `ranks[0]` first, then of `ranks[1]`, ...;
    /// values in no group last. Lets a caller sort by a vocabulary of its own (a vendor's
    /// status names) that maps several stored values onto one.
    Ranked {
        field: ImportField,
        ranks: Vec<Vec<String>>,
    },
}

/// One sort key and its direction.
#[derive(Debug, Clone, PartialEq)]
pub struct SortSpec {
    pub key: SortKey,
    pub descending: bool,
}

/// Filters, order and page of a search.
///
/// The order is `sort`, then `number` (unique in a workspace) in the direction of the last
/// key (descending when `sort` is empty), so that it is total and pages never overlap.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportSearch {
    pub filters: Vec<ImportFilter>,
    /// Further conditions that must all hold, besides `filters`.
    pub conditions: Vec<Condition>,
    pub sort: Vec<SortSpec>,
    /// Keyset position: the values of the last row seen for each key of `sort` (plain
    /// fields only; `None` for a null) followed by its `number`. Only rows after it match.
    pub after: Option<Vec<Option<FilterValue>>>,
    /// Rows to skip after filtering (offset pagination).
    pub offset: u64,
    pub limit: u32,
}

/// A page of a search.
#[derive(Debug, Clone)]
pub struct SearchPage {
    pub imports: Vec<ImportRecord>,
    /// How many imports match the filters and `after` (whatever `offset` and `limit`).
    pub total: u64,
}

/// How a backend writes the SQL of a search: its expressions of fields and filters, and its
/// placeholders. Each call that writes a placeholder binds its value, in the order called.
pub(crate) trait SearchSql {
    /// The backend's literals for true and false.
    const TRUTH: (&'static str, &'static str);
    /// Binds the workspace's id; answers its placeholder.
    fn bind_workspace(&mut self, id: Uuid) -> String;
    /// Binds an integer; answers its placeholder.
    fn bind_int(&mut self, n: i64) -> String;
    /// How many values are bound so far.
    fn bound(&self) -> usize;
    /// One filter as SQL, binding its values.
    fn filter(&mut self, f: &ImportFilter) -> String;
    /// The expression a field sorts by.
    fn sort_expr(field: ImportField) -> String;
    /// Binds one keyset value of a field (nulls as the sort expression's null stand-in).
    fn bind_key(&mut self, field: ImportField, v: &Option<FilterValue>) -> StoreResult<String>;
    /// The condition that a field's value is one of `group`, binding the group.
    fn in_group(&mut self, field: ImportField, group: &[String]) -> String;
}

/// The two statements of a search over `intake_imports i`, written by [`statements`].
pub(crate) struct SearchStatements {
    /// Counts the matches; it takes the first `count_params` bound values.
    pub count: String,
    pub count_params: usize,
    /// Selects the ids of the page's imports, in order; it takes every bound value.
    pub page: String,
}

/// The statements of a search of a workspace's imports, in the backend's SQL.
pub(crate) fn statements<S: SearchSql>(
    sql: &mut S,
    workspace_id: Uuid,
    q: &ImportSearch,
) -> StoreResult<SearchStatements> {
    let mut cond = format!("i.workspace_id = {}", sql.bind_workspace(workspace_id));
    for f in &q.filters {
        let filter = sql.filter(f);
        cond.push_str(&format!(" AND {filter}"));
    }
    for c in &q.conditions {
        let condition = condition_sql(c, S::TRUTH, &mut |f| sql.filter(f));
        cond.push_str(&format!(" AND {condition}"));
    }
    let order = effective_order(&q.sort);
    if let Some(after) = &q.after {
        let mut bind = |field, v: &Option<FilterValue>| sql.bind_key(field, v);
        cond.push_str(&after_sql(&order, after, &S::sort_expr, &mut bind)?);
    }
    let count = format!("SELECT count(*) FROM intake_imports i WHERE {cond}");
    let count_params = sql.bound();
    let order_sql = order_by(sql, &order);
    let limit = sql.bind_int(i64::from(q.limit));
    let offset = sql.bind_int(i64::try_from(q.offset).unwrap_or(i64::MAX));
    let page = format!(
        "SELECT i.id FROM intake_imports i WHERE {cond} ORDER BY {order_sql}
         LIMIT {limit} OFFSET {offset}"
    );
    Ok(SearchStatements {
        count,
        count_params,
        page,
    })
}

/// The ORDER BY clause of an order: a ranked key sorts by the rank of the first group that
/// holds its value (values in no group last).
fn order_by<S: SearchSql>(sql: &mut S, order: &[SortSpec]) -> String {
    let mut keys = Vec::with_capacity(order.len());
    for spec in order {
        let key = match &spec.key {
            SortKey::Field(f) => S::sort_expr(*f),
            SortKey::Ranked { field, ranks } => {
                let mut case = String::from("(CASE");
                for (rank, group) in ranks.iter().enumerate() {
                    if !group.is_empty() {
                        let when = sql.in_group(*field, group);
                        case.push_str(&format!(" WHEN {when} THEN {rank}"));
                    }
                }
                case.push_str(&format!(" ELSE {} END)", ranks.len()));
                case
            }
        };
        keys.push(format!(
            "{key} {}",
            if spec.descending { "DESC" } else { "ASC" }
        ));
    }
    keys.join(", ")
}

/// The full order of a search: the requested keys, then `number` as the tie-breaker.
pub(crate) fn effective_order(sort: &[SortSpec]) -> Vec<SortSpec> {
    let mut keys = sort.to_vec();
    let descending = sort.last().is_none_or(|s| s.descending);
    keys.push(SortSpec {
        key: SortKey::Field(ImportField::Number),
        descending,
    });
    keys
}

/// A condition tree as SQL: each filter as `filter` writes it, an empty `All` and `Any` as
/// the backend's `truth` literals (true, false).
pub(crate) fn condition_sql(
    c: &Condition,
    truth: (&str, &str),
    filter: &mut dyn FnMut(&ImportFilter) -> String,
) -> String {
    let (parts, joiner, empty) = match c {
        Condition::Filter(f) => return filter(f),
        Condition::All(cs) => (cs, " AND ", truth.0),
        Condition::Any(cs) => (cs, " OR ", truth.1),
    };
    if parts.is_empty() {
        return empty.to_owned();
    }
    let sql: Vec<String> = parts
        .iter()
        .map(|c| condition_sql(c, truth, filter))
        .collect();
    format!("({})", sql.join(joiner))
}

/// Writes the placeholder of one keyset value of a field (binding the value).
pub(crate) type BindKey<'a> =
    dyn FnMut(ImportField, &Option<FilterValue>) -> super::StoreResult<String> + 'a;

/// The keyset condition "after this position in this order", as ` AND (...)`: each key as
/// `key` writes it, each value as `bind` writes it (a placeholder the backend binds, called
/// in the order the placeholders appear).
pub(crate) fn after_sql(
    order: &[SortSpec],
    after: &[Option<FilterValue>],
    key: &dyn Fn(ImportField) -> String,
    bind: &mut BindKey<'_>,
) -> super::StoreResult<String> {
    use super::StoreError;
    if after.len() != order.len() {
        return Err(StoreError::Invalid(format!(
            "a keyset position needs {} values, not {}",
            order.len(),
            after.len()
        )));
    }
    let mut fields = Vec::with_capacity(order.len());
    for spec in order {
        match spec.key {
            SortKey::Field(f) => fields.push(f),
            SortKey::Ranked { .. } => {
                return Err(StoreError::Invalid(
                    "a keyset position cannot follow a ranked order".into(),
                ));
            }
        }
    }
    // (k1 > v1) OR (k1 = v1 AND k2 > v2) OR ..., each comparison in its key's direction.
    let mut alternatives = Vec::with_capacity(order.len());
    for i in 0..order.len() {
        let mut terms = Vec::with_capacity(i + 1);
        for j in 0..i {
            let v = bind(fields[j], &after[j])?;
            terms.push(format!("{} = {v}", key(fields[j])));
        }
        let cmp = if order[i].descending { "<" } else { ">" };
        let v = bind(fields[i], &after[i])?;
        terms.push(format!("{} {cmp} {v}", key(fields[i])));
        alternatives.push(format!("({})", terms.join(" AND ")));
    }
    Ok(format!(" AND ({})", alternatives.join(" OR ")))
}
