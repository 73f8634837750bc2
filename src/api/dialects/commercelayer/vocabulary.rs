//! Commerce Layer's vocabulary: its statuses, formats, attributes, sorts, and the Ransack
//! filters (`filter[q][...]`) read into store conditions.

use super::*;

/// Commerce Layer's statuses, in their alphabetical order (the order `sort=status` uses),
/// with the Intake statuses each stands for.
pub(super) const STATUSES: [(&str, &[ImportStatus]); 4] = [
    (
        "completed",
        &[ImportStatus::Complete, ImportStatus::PartiallyComplete],
    ),
    (
        "in_progress",
        &[ImportStatus::Processing, ImportStatus::RollingBack],
    ),
    (
        "interrupted",
        &[
            ImportStatus::Failed,
            ImportStatus::Cancelled,
            ImportStatus::Unsupported,
            ImportStatus::RolledBack,
        ],
    ),
    ("pending", &[ImportStatus::New, ImportStatus::Queued]),
];

pub(super) fn status(s: ImportStatus) -> &'static str {
    STATUSES
        .iter()
        .find(|(_, members)| members.contains(&s))
        .map_or("interrupted", |(name, _)| name)
}

/// Commerce Layer's two formats: delimited text is `csv`, JSON and NDJSON are `json`.
pub(super) fn format_of(intake: &str) -> &'static str {
    match intake {
        "csv" | "tsv" => "csv",
        _ => "json",
    }
}

/// The attributes, in the documentation's order (`format` after `resource_type`).
pub(super) const ATTRIBUTES: [&str; 24] = [
    "resource_type",
    "format",
    "parent_resource_id",
    "status",
    "started_at",
    "completed_at",
    "interrupted_at",
    "inputs",
    "inputs_size",
    "errors_count",
    "warnings_count",
    "destroyed_count",
    "processed_count",
    "errors_log",
    "warnings_log",
    "cleanup_records",
    "attachment_url",
    "created_at",
    "updated_at",
    "reference",
    "reference_origin",
    "metadata",
    "_interrupt",
    "events",
];

/// A sortable field (the documentation's list).
pub(super) fn sort_key(name: &str) -> Option<Option<SortKey>> {
    let field = |f| Some(Some(SortKey::Field(f)));
    match name {
        "resource_type" => field(ImportField::Table),
        "format" => Some(Some(SortKey::Ranked {
            field: ImportField::Format,
            ranks: vec![
                vec!["csv".into(), "tsv".into()],
                vec!["json".into(), "ndjson".into()],
            ],
        })),
        "status" => Some(Some(SortKey::Ranked {
            field: ImportField::Status,
            ranks: STATUSES
                .iter()
                .map(|(_, members)| members.iter().map(|s| s.as_str().to_owned()).collect())
                .collect(),
        })),
        "started_at" => field(ImportField::StartedAt),
        "completed_at" => field(ImportField::CompletedAt),
        "interrupted_at" => field(ImportField::StoppedAt),
        "inputs_size" => field(ImportField::Inputs),
        "errors_count" => field(ImportField::Invalid),
        "warnings_count" => field(ImportField::Warnings),
        "destroyed_count" => field(ImportField::Destroyed),
        "processed_count" => field(ImportField::Processed),
        "id" => field(ImportField::Id),
        "created_at" => field(ImportField::CreatedAt),
        "updated_at" => field(ImportField::UpdatedAt),
        "reference" => field(ImportField::Reference),
        "reference_origin" => field(ImportField::ReferenceOrigin),
        // Always null in Intake: sorting by them keeps the order of the other keys.
        "parent_resource_id" | "attachment_url" => Some(None),
        _ => None,
    }
}

/// A filterable field (the documentation's list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FilterField {
    Stored(ImportField),
    /// Filtered by Commerce Layer's status names.
    Status,
    /// Always null.
    ParentResourceId,
}

pub(super) const FILTER_FIELDS: [(&str, FilterField); 16] = [
    ("resource_type", FilterField::Stored(ImportField::Table)),
    ("parent_resource_id", FilterField::ParentResourceId),
    ("status", FilterField::Status),
    ("started_at", FilterField::Stored(ImportField::StartedAt)),
    (
        "completed_at",
        FilterField::Stored(ImportField::CompletedAt),
    ),
    (
        "interrupted_at",
        FilterField::Stored(ImportField::StoppedAt),
    ),
    ("inputs_size", FilterField::Stored(ImportField::Inputs)),
    ("errors_count", FilterField::Stored(ImportField::Invalid)),
    ("warnings_count", FilterField::Stored(ImportField::Warnings)),
    (
        "destroyed_count",
        FilterField::Stored(ImportField::Destroyed),
    ),
    (
        "processed_count",
        FilterField::Stored(ImportField::Processed),
    ),
    ("id", FilterField::Stored(ImportField::Id)),
    ("created_at", FilterField::Stored(ImportField::CreatedAt)),
    ("updated_at", FilterField::Stored(ImportField::UpdatedAt)),
    ("reference", FilterField::Stored(ImportField::Reference)),
    (
        "reference_origin",
        FilterField::Stored(ImportField::ReferenceOrigin),
    ),
];

/// How one value is compared (a Ransack predicate's core).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Compare {
    Eq,
    NotEq,
    Lt,
    Lteq,
    Gt,
    Gteq,
    Start,
    NotStart,
    End,
    NotEnd,
    Cont,
    NotCont,
    /// `cont` without case (ASCII letters).
    ICont,
    NotICont,
    /// A `LIKE` pattern, without case (ASCII letters).
    Matches,
    DoesNotMatch,
}

/// The comparisons, by name; each also takes `_any` and `_all` (a comma list).
pub(super) const COMPARES: [(&str, Compare); 16] = [
    ("eq", Compare::Eq),
    ("not_eq", Compare::NotEq),
    ("lt", Compare::Lt),
    ("lteq", Compare::Lteq),
    ("gt", Compare::Gt),
    ("gteq", Compare::Gteq),
    ("start", Compare::Start),
    ("not_start", Compare::NotStart),
    ("end", Compare::End),
    ("not_end", Compare::NotEnd),
    ("cont", Compare::Cont),
    ("not_cont", Compare::NotCont),
    ("i_cont", Compare::ICont),
    ("not_i_cont", Compare::NotICont),
    ("matches", Compare::Matches),
    ("does_not_match", Compare::DoesNotMatch),
];

/// How a comparison meets a comma list of values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Quantifier {
    One,
    Any,
    All,
}

/// A Ransack predicate, as Commerce Layer documents them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Matcher {
    /// `eq`, `eq_any`, `eq_all`, `cont`, ...
    Compare(Compare, Quantifier),
    /// `in`, `not_in` (a comma list), and their `_or_null` forms.
    In { negated: bool, or_null: bool },
    /// `eq_or_null`, `not_eq_or_null`.
    EqOrNull { negated: bool },
    /// `gt_lt`, `gteq_lteq`, `gteq_lt`, `gt_lteq`: two values, `low,high`.
    Range(Compare, Compare),
    /// `null` / `not_null`, with `true` or `false`.
    Null { negated: bool },
    /// `present` / `blank`, with `true` or `false`.
    Present { negated: bool },
    /// `true`, `false`, `jcont`: for boolean and JSON attributes, which imports do not
    /// filter on.
    Unsupported,
}

/// Every predicate name with its matcher, longest name first (so that `not_eq` is tried
/// before `eq`, and `gteq_lt` before `lt`).
pub(super) fn matchers() -> Vec<(String, Matcher)> {
    let mut all: Vec<(String, Matcher)> = Vec::new();
    for (name, c) in COMPARES {
        all.push((name.to_owned(), Matcher::Compare(c, Quantifier::One)));
        all.push((format!("{name}_any"), Matcher::Compare(c, Quantifier::Any)));
        all.push((format!("{name}_all"), Matcher::Compare(c, Quantifier::All)));
    }
    let fixed = [
        (
            "in",
            Matcher::In {
                negated: false,
                or_null: false,
            },
        ),
        (
            "not_in",
            Matcher::In {
                negated: true,
                or_null: false,
            },
        ),
        (
            "in_or_null",
            Matcher::In {
                negated: false,
                or_null: true,
            },
        ),
        (
            "not_in_or_null",
            Matcher::In {
                negated: true,
                or_null: true,
            },
        ),
        ("eq_or_null", Matcher::EqOrNull { negated: false }),
        ("not_eq_or_null", Matcher::EqOrNull { negated: true }),
        ("gt_lt", Matcher::Range(Compare::Gt, Compare::Lt)),
        ("gteq_lteq", Matcher::Range(Compare::Gteq, Compare::Lteq)),
        ("gteq_lt", Matcher::Range(Compare::Gteq, Compare::Lt)),
        ("gt_lteq", Matcher::Range(Compare::Gt, Compare::Lteq)),
        ("null", Matcher::Null { negated: false }),
        ("not_null", Matcher::Null { negated: true }),
        ("present", Matcher::Present { negated: false }),
        ("blank", Matcher::Present { negated: true }),
        ("true", Matcher::Unsupported),
        ("false", Matcher::Unsupported),
        ("jcont", Matcher::Unsupported),
    ];
    all.extend(fixed.into_iter().map(|(n, m)| (n.to_owned(), m)));
    all.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
    all
}

/// How several attributes of one predicate combine (`a_or_b_eq`, `a_and_b_eq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Combinator {
    Or,
    And,
}

/// A predicate split into its attributes, their combinator and its matcher.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Predicate {
    pub(super) fields: Vec<(&'static str, FilterField)>,
    pub(super) combinator: Combinator,
    pub(super) matcher: Matcher,
    /// The matcher's name as written (for messages).
    pub(super) matcher_name: String,
}

/// Splits `<attribute>[_or_|_and_<attribute>...]_<matcher>` as Ransack does: the first
/// `_or_` or `_and_` names the combinator, and every part must be a filterable attribute.
pub(super) fn split_predicate(predicate: &str) -> Option<Predicate> {
    matchers().into_iter().find_map(|(name, matcher)| {
        let attributes = predicate.strip_suffix(name.as_str())?.strip_suffix('_')?;
        let combinator = match (attributes.find("_or_"), attributes.find("_and_")) {
            (Some(o), Some(a)) if a < o => Combinator::And,
            (None, Some(_)) => Combinator::And,
            _ => Combinator::Or,
        };
        let fields = attributes
            .split("_or_")
            .flat_map(|p| p.split("_and_"))
            .map(|part| FILTER_FIELDS.iter().find(|(n, _)| *n == part).copied())
            .collect::<Option<Vec<_>>>()?;
        Some(Predicate {
            fields,
            combinator,
            matcher,
            matcher_name: name,
        })
    })
}

pub(super) fn truth(parameter: &str, value: &str) -> ClResult<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "t" | "yes" => Ok(true),
        "false" | "0" | "f" | "no" => Ok(false),
        _ => Err(ClError::param(
            "INVALID_FILTER_VALUE",
            parameter,
            format!("{value:?} is not a valid value for {parameter}: use true or false"),
        )),
    }
}

/// Whether `text` matches a SQL `LIKE` pattern (`%`, `_`, `\` escapes), ASCII letters
/// compared without case, as the store compares.
pub(super) fn like(text: &str, pattern: &str) -> bool {
    let t: Vec<char> = text.chars().map(|c| c.to_ascii_lowercase()).collect();
    let p: Vec<char> = pattern.chars().map(|c| c.to_ascii_lowercase()).collect();
    // Iterative matching with backtracking to the last `%`.
    let (mut ti, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        let (pc, escaped) = match p.get(pi) {
            Some('\\') => (p.get(pi + 1).copied(), true),
            other => (other.copied(), false),
        };
        match pc {
            Some('%') if !escaped => {
                star = Some((pi + 1, ti));
                pi += 1;
                continue;
            }
            Some(c) if (c == '_' && !escaped) || c == t[ti] => {
                ti += 1;
                pi += if escaped { 2 } else { 1 };
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, st)) => {
                pi = sp;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|c| *c == '%')
}

/// Whether a (never null) text passes a comparison.
pub(super) fn text_holds(compare: Compare, candidate: &str, arg: &str) -> bool {
    let folded = |s: &str| s.to_ascii_lowercase();
    match compare {
        Compare::Eq => candidate == arg,
        Compare::NotEq => candidate != arg,
        Compare::Lt => candidate < arg,
        Compare::Lteq => candidate <= arg,
        Compare::Gt => candidate > arg,
        Compare::Gteq => candidate >= arg,
        Compare::Start => candidate.starts_with(arg),
        Compare::NotStart => !candidate.starts_with(arg),
        Compare::End => candidate.ends_with(arg),
        Compare::NotEnd => !candidate.ends_with(arg),
        Compare::Cont => candidate.contains(arg),
        Compare::NotCont => !candidate.contains(arg),
        Compare::ICont => folded(candidate).contains(&folded(arg)),
        Compare::NotICont => !folded(candidate).contains(&folded(arg)),
        Compare::Matches => like(candidate, arg),
        Compare::DoesNotMatch => !like(candidate, arg),
    }
}

/// A comma list's values, trimmed.
pub(super) fn values(value: &str) -> Vec<&str> {
    value.split(',').map(str::trim).collect()
}

/// A condition that always holds, and one that never does.
pub(super) fn always() -> Condition {
    Condition::All(Vec::new())
}
pub(super) fn never() -> Condition {
    Condition::Any(Vec::new())
}

/// Whether a value that is always null passes a matcher (`parent_resource_id`).
pub(super) fn null_holds(parameter: &str, matcher: Matcher, value: &str) -> ClResult<bool> {
    Ok(match matcher {
        Matcher::Null { negated } => truth(parameter, value)? != negated,
        // Blank (`present=false`, `blank=true`) holds for null.
        Matcher::Present { negated } => truth(parameter, value)? == negated,
        Matcher::In { or_null, .. } => or_null,
        Matcher::EqOrNull { .. } => true,
        // Every comparison with null fails, as in SQL.
        _ => false,
    })
}

/// Whether a text that is never null (a Commerce Layer status name) passes a matcher.
pub(super) fn name_holds(
    parameter: &str,
    matcher: Matcher,
    name: &str,
    value: &str,
) -> ClResult<bool> {
    Ok(match matcher {
        Matcher::Compare(c, Quantifier::One) => text_holds(c, name, value),
        Matcher::Compare(c, Quantifier::Any) => {
            values(value).iter().any(|v| text_holds(c, name, v))
        }
        Matcher::Compare(c, Quantifier::All) => {
            values(value).iter().all(|v| text_holds(c, name, v))
        }
        Matcher::In { negated, .. } => values(value).contains(&name) != negated,
        Matcher::EqOrNull { negated } => (name == value.trim()) != negated,
        Matcher::Range(low, high) => match values(value)[..] {
            [a, b] => text_holds(low, name, a) && text_holds(high, name, b),
            _ => return Err(range_error(parameter, value)),
        },
        // A status name is never null, and never blank.
        Matcher::Null { negated } => truth(parameter, value)? == negated,
        Matcher::Present { negated } => truth(parameter, value)? != negated,
        Matcher::Unsupported => false,
    })
}

pub(super) fn range_error(parameter: &str, value: &str) -> ClError {
    ClError::param(
        "INVALID_FILTER_VALUE",
        parameter,
        format!("{value:?} is not a valid value for {parameter}: it must be two values, low,high"),
    )
}

/// A date or date-time as Commerce Layer (Rails) reads one: RFC 3339, a date alone
/// (`2018-01-01`, its midnight UTC), or a date-time without offset (UTC), with `T` or a
/// space between date and time and with or without seconds.
pub(super) fn filter_time(raw: &str) -> Option<time::OffsetDateTime> {
    let s = raw.trim().replacen(' ', "T", 1);
    if let Some(t) = parse_time(&s) {
        return Some(t);
    }
    if s.len() == 10 {
        return parse_time(&format!("{s}T00:00:00Z"));
    }
    parse_time(&format!("{s}Z")).or_else(|| parse_time(&format!("{s}:00Z")))
}

/// One value compared with a stored field, typed by the field's kind.
pub(super) fn typed(
    parameter: &str,
    name: &str,
    field: ImportField,
    raw: &str,
) -> ClResult<FilterValue> {
    let raw = raw.trim();
    let bad = |what: &str| {
        ClError::param(
            "INVALID_FILTER_VALUE",
            parameter,
            format!("{raw:?} is not a valid value for {name}: it must be {what}"),
        )
    };
    Ok(match field.kind() {
        FieldKind::Text => FilterValue::Text(raw.to_owned()),
        FieldKind::Integer => FilterValue::Integer(raw.parse().map_err(|_| bad("a whole number"))?),
        FieldKind::Time => {
            FilterValue::Time(filter_time(raw).ok_or_else(|| bad("an ISO 8601 date or date-time"))?)
        }
    })
}

/// One comparison of a stored field.
pub(super) fn compare_op(
    parameter: &str,
    name: &str,
    field: ImportField,
    compare: Compare,
    raw: &str,
) -> ClResult<Condition> {
    let v = || typed(parameter, name, field, raw);
    let op = match compare {
        Compare::Eq => FilterOp::Eq(v()?),
        Compare::NotEq => FilterOp::NotEq(v()?),
        Compare::Lt => FilterOp::Lt(v()?),
        Compare::Lteq => FilterOp::Lte(v()?),
        Compare::Gt => FilterOp::Gt(v()?),
        Compare::Gteq => FilterOp::Gte(v()?),
        Compare::Start => FilterOp::StartsWith(raw.to_owned()),
        Compare::NotStart => FilterOp::NotStartsWith(raw.to_owned()),
        Compare::End => FilterOp::EndsWith(raw.to_owned()),
        Compare::NotEnd => FilterOp::NotEndsWith(raw.to_owned()),
        Compare::Cont => FilterOp::Contains(raw.to_owned()),
        Compare::NotCont => FilterOp::NotContains(raw.to_owned()),
        Compare::ICont => FilterOp::ContainsFolded(raw.to_owned()),
        Compare::NotICont => FilterOp::NotContainsFolded(raw.to_owned()),
        Compare::Matches => FilterOp::Like(raw.to_owned()),
        Compare::DoesNotMatch => FilterOp::NotLike(raw.to_owned()),
    };
    Ok(Condition::Filter(ImportFilter { field, op }))
}

/// A matcher over one stored field.
pub(super) fn stored_condition(
    parameter: &str,
    name: &str,
    field: ImportField,
    matcher: Matcher,
    value: &str,
) -> ClResult<Condition> {
    let filter = |op| Condition::Filter(ImportFilter { field, op });
    let is_null = |null| filter(FilterOp::IsNull(null));
    let list = || -> ClResult<Vec<FilterValue>> {
        values(value)
            .into_iter()
            .map(|v| typed(parameter, name, field, v))
            .collect()
    };
    Ok(match matcher {
        Matcher::Compare(c, Quantifier::One) => compare_op(parameter, name, field, c, value)?,
        Matcher::Compare(c, Quantifier::Any) => Condition::Any(
            values(value)
                .into_iter()
                .map(|v| compare_op(parameter, name, field, c, v))
                .collect::<ClResult<_>>()?,
        ),
        Matcher::Compare(c, Quantifier::All) => Condition::All(
            values(value)
                .into_iter()
                .map(|v| compare_op(parameter, name, field, c, v))
                .collect::<ClResult<_>>()?,
        ),
        Matcher::In { negated, or_null } => {
            let op = if negated {
                FilterOp::NotIn(list()?)
            } else {
                FilterOp::In(list()?)
            };
            if or_null {
                Condition::Any(vec![filter(op), is_null(true)])
            } else {
                filter(op)
            }
        }
        Matcher::EqOrNull { negated } => {
            let v = typed(parameter, name, field, value)?;
            let op = if negated {
                FilterOp::NotEq(v)
            } else {
                FilterOp::Eq(v)
            };
            Condition::Any(vec![filter(op), is_null(true)])
        }
        Matcher::Range(low, high) => match values(value)[..] {
            [a, b] => Condition::All(vec![
                compare_op(parameter, name, field, low, a)?,
                compare_op(parameter, name, field, high, b)?,
            ]),
            _ => return Err(range_error(parameter, value)),
        },
        Matcher::Null { negated } => is_null(truth(parameter, value)? != negated),
        Matcher::Present { negated } => {
            let present = truth(parameter, value)? != negated;
            // Blank is null or empty text; only text fields can be empty.
            let empty = field.kind() == FieldKind::Text;
            match (present, empty) {
                (true, true) => Condition::All(vec![
                    is_null(false),
                    filter(FilterOp::NotEq(FilterValue::Text(String::new()))),
                ]),
                (true, false) => is_null(false),
                (false, true) => Condition::Any(vec![
                    is_null(true),
                    filter(FilterOp::Eq(FilterValue::Text(String::new()))),
                ]),
                (false, false) => is_null(true),
            }
        }
        Matcher::Unsupported => never(),
    })
}

/// One `filter[q][<predicate>]=<value>` as a store condition.
pub(super) fn filter(parameter: &str, predicate: &str, value: &str) -> ClResult<Condition> {
    let Some(p) = split_predicate(predicate) else {
        let detail = if predicate.starts_with("events_") {
            format!("{parameter}: filtering on the events relationship is not supported")
        } else {
            format!(
                "{parameter} is not a valid filter: filter on {} (combined with _or_ or _and_) with one of Ransack's predicates (_eq, _in, _gt, _cont, _matches, _null, ...)",
                FILTER_FIELDS.map(|(n, _)| n).join(", ")
            )
        };
        return Err(ClError::param("FILTER_NOT_ALLOWED", parameter, detail));
    };
    if p.matcher == Matcher::Unsupported {
        return Err(ClError::param(
            "FILTER_NOT_ALLOWED",
            parameter,
            format!(
                "{parameter}: _{} applies to boolean and JSON attributes, and imports filter on none",
                p.matcher_name
            ),
        ));
    }
    let mut parts = Vec::with_capacity(p.fields.len());
    for (name, field) in &p.fields {
        parts.push(match field {
            FilterField::Stored(f) => stored_condition(parameter, name, *f, p.matcher, value)?,
            // Never null: the Commerce Layer names that pass stand for their Intake statuses.
            FilterField::Status => {
                let mut wanted = Vec::new();
                for (n, members) in STATUSES {
                    if name_holds(parameter, p.matcher, n, value)? {
                        wanted.extend(
                            members
                                .iter()
                                .map(|s| FilterValue::Text(s.as_str().to_owned())),
                        );
                    }
                }
                Condition::Filter(ImportFilter {
                    field: ImportField::Status,
                    op: FilterOp::In(wanted),
                })
            }
            // Always null.
            FilterField::ParentResourceId => {
                if null_holds(parameter, p.matcher, value)? {
                    always()
                } else {
                    never()
                }
            }
        });
    }
    Ok(match (p.combinator, parts.len()) {
        (_, 1) => parts.remove(0),
        (Combinator::Or, _) => Condition::Any(parts),
        (Combinator::And, _) => Condition::All(parts),
    })
}
