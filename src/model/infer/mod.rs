//! Schema inference: column names, types, flags and a key for a source, proposed from a
//! sample (`POST /v1/schema/infer`, previews) or decided from a whole source (the one-step
//! load, `create_table=true`).
//!
//! Every cell goes through the same `ColumnCoercer` imports use, so an inferred type accepts
//! every value it was inferred from. Cells are profiled one at a time in bounded memory: a
//! whole source is read once, never held.

mod column;
mod names;
mod probes;

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;
use serde_json::{Map, Value as Json, json};

use crate::model::ColumnType;

use column::ColumnProfile;
pub use column::{Cell, MISSING_TOKENS, is_missing_token};
pub use names::column_name_for;
use names::{key_rank, unique_names};
use probes::Probes;

/// What a proposal may claim beyond each column's type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Claims {
    /// Propose `enum` for short closed sets of text values.
    pub enums: bool,
    /// Mark columns without a missing value `required`.
    pub required: bool,
    /// Mark columns whose values never repeat `unique`.
    pub unique: bool,
    /// Propose a primary key: a complete column of a key type whose values never repeat.
    pub key: bool,
    /// Read the usual missing-value tokens (`NA`, `NULL`…) as missing in typed columns; the
    /// load must then be told so (`typed_null_values`), which a sample's caller is not.
    pub missing_tokens: bool,
}

impl Claims {
    /// What a whole source proves: every column's completeness and a key checked against
    /// every value. Uniqueness is claimed only through the key.
    pub fn whole_source(enums: bool) -> Claims {
        Claims {
            enums,
            required: true,
            unique: false,
            key: true,
            missing_tokens: true,
        }
    }
}

/// A proposed table schema.
#[derive(Debug, Serialize)]
pub struct InferredSchema {
    pub columns: Vec<InferredColumn>,
    /// The proposed key: one column, or empty when no column qualifies.
    pub primary_key: Vec<String>,
    /// How many records the proposal is based on.
    pub sampled_rows: u64,
    /// The missing-value tokens (`NA`, `NULL`…) read as missing in typed columns.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_tokens: Vec<String>,
}

/// A proposed column: its name, the source field it reads, its type and flags.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InferredColumn {
    pub name: String,
    pub source: String,
    #[serde(rename = "type")]
    pub r#type: ColumnType,
    pub required: bool,
    pub unique: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
}

impl InferredSchema {
    /// The table as `POST /v1/tables` takes it.
    pub fn table(&self, name: &str) -> Json {
        let columns: Vec<Json> = self
            .columns
            .iter()
            .map(|c| {
                let mut col = json!({
                    "name": c.name,
                    "type": c.r#type,
                    "required": c.required,
                    "unique": c.unique,
                });
                if let Some(v) = &c.values {
                    col["values"] = json!(v);
                }
                col
            })
            .collect();
        json!({"name": name, "columns": columns, "primary_key": self.primary_key})
    }

    /// Source field → column name, for the fields whose column is named differently.
    pub fn mapping(&self) -> Map<String, Json> {
        self.columns
            .iter()
            .filter(|c| c.source != c.name)
            .map(|c| (c.source.clone(), json!(c.name)))
            .collect()
    }
}

/// Inference over a stream of records: feed every record, then `finish`.
#[derive(Debug)]
pub struct Inference {
    claims: Claims,
    probes: Probes,
    /// Cells that the import's null settings read as NULL (besides empty ones).
    null_values: Vec<String>,
    columns: Vec<ColumnProfile>,
    /// Column of each JSON key.
    keys: HashMap<String, usize>,
    records: u64,
    /// Whether a column already remembers its values to find a key.
    key_tracked: bool,
    /// The source has a header: it alone makes columns.
    fixed_header: bool,
}

impl Inference {
    /// Starts an inference over a source with this header (empty for JSON sources, whose
    /// fields are learned from the records).
    pub fn new(header: &[String], claims: Claims, null_values: &[String]) -> Inference {
        let mut inference = Inference {
            claims,
            probes: Probes::new(),
            null_values: null_values
                .iter()
                .filter(|v| !v.is_empty())
                .cloned()
                .collect(),
            columns: Vec::with_capacity(header.len()),
            keys: HashMap::new(),
            records: 0,
            key_tracked: false,
            fixed_header: !header.is_empty(),
        };
        for source in header {
            inference.add_column(source.clone());
        }
        inference
    }

    fn add_column(&mut self, source: String) -> usize {
        // Remembering values costs memory: a whole source remembers them for the likeliest
        // key alone (`id`, `…_id`, key and code names); integers that only increase need no
        // memory and are noticed in every column.
        let distinct = self.claims.unique
            || (self.claims.key && !self.key_tracked && key_rank(&column_name_for(&source)) < 3);
        self.key_tracked |= distinct && !self.claims.unique;
        let profile = ColumnProfile::new(
            source.clone(),
            self.records,
            self.claims.enums,
            distinct,
            self.claims.missing_tokens,
        );
        self.columns.push(profile);
        let i = self.columns.len() - 1;
        self.keys.insert(source, i);
        i
    }

    fn is_null(&self, text: &str) -> bool {
        self.null_values.iter().any(|n| n == text)
    }

    /// Adds a record of a delimited source: its fields in header order. A source without a
    /// header gains a column per field position.
    pub fn add_fields<'a>(&mut self, fields: impl IntoIterator<Item = &'a str>) {
        let mut n = 0;
        for field in fields {
            if n == self.columns.len() {
                if self.fixed_header {
                    // Fields past the header's are not columns (the import warns of them).
                    break;
                }
                self.add_column(String::new());
            }
            let missing = self.is_null(field);
            self.columns[n].add(&self.probes, Cell::Text(field), missing);
            n += 1;
        }
        for c in &mut self.columns[n..] {
            c.add_absent();
        }
        self.records += 1;
    }

    /// Adds a JSON record; keys not seen before become columns, missing in earlier records.
    pub fn add_object<'a>(&mut self, object: impl IntoIterator<Item = (&'a String, &'a Json)>) {
        let mut seen = vec![false; self.columns.len()];
        for (key, value) in object {
            let i = match self.keys.get(key) {
                Some(&i) => i,
                None => {
                    seen.push(false);
                    self.add_column(key.clone())
                }
            };
            let missing = matches!(value, Json::String(s) if self.is_null(s));
            self.columns[i].add(&self.probes, Cell::Json(value), missing);
            seen[i] = true;
        }
        for (c, seen) in self.columns.iter_mut().zip(seen) {
            if !seen {
                c.add_absent();
            }
        }
        self.records += 1;
    }

    /// Adds what another inference over the records that follow this one's saw (the same
    /// header, the same claims): the result is that of one inference over both.
    pub fn merge(&mut self, later: Inference) {
        for (mine, theirs) in self.columns.iter_mut().zip(later.columns) {
            mine.merge(theirs);
        }
        self.records += later.records;
    }

    /// Records added so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The proposal for everything added.
    pub fn finish(self) -> InferredSchema {
        let header: Vec<String> = self.columns.iter().map(|c| c.source.clone()).collect();
        let names = unique_names(&header);
        let records = self.records;
        let mut missing_tokens: BTreeSet<String> = BTreeSet::new();
        let mut columns = Vec::with_capacity(self.columns.len());
        let mut key_candidates = Vec::new();
        for (position, (profile, name)) in self.columns.iter().zip(names).enumerate() {
            let (ty, values) = profile.choose_type(self.claims.enums);
            let tokens_missing = ColumnProfile::tokens_are_missing(ty);
            let missing = profile.blank + if tokens_missing { profile.tokens } else { 0 };
            if tokens_missing {
                missing_tokens.extend(profile.token_spellings.iter().cloned());
            }
            let complete = records > 0 && missing == 0;
            // Tokens kept as text are values the distinct check did not see.
            let distinct = records >= 2
                && profile.present > 0
                && (tokens_missing || profile.tokens == 0)
                && profile.all_distinct(ty);
            if complete
                && distinct
                && matches!(
                    ty,
                    ColumnType::Integer | ColumnType::String | ColumnType::Uuid
                )
            {
                key_candidates.push((key_rank(&name), position, name.clone()));
            }
            columns.push(InferredColumn {
                name,
                source: profile.source.clone(),
                r#type: ty,
                required: self.claims.required && complete,
                // JSON values have no order a unique index could use (on PostgreSQL).
                unique: self.claims.unique && distinct && ty != ColumnType::Json,
                values,
                max_length: None,
            });
        }
        let primary_key = if self.claims.key {
            key_candidates
                .into_iter()
                .min()
                .map(|(_, _, name)| vec![name])
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        InferredSchema {
            columns,
            primary_key,
            sampled_rows: records,
            missing_tokens: missing_tokens.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// One sampled cell: text (CSV) or a JSON value (NDJSON/JSON).
    #[derive(Debug, Clone, PartialEq)]
    enum SampleCell {
        Text(String),
        Json(serde_json::Value),
    }

    use super::probes::probe;
    use crate::model::Identifier;

    /// Infers from rows of optional cells, claiming everything a sample can show.
    fn infer_schema(header: &[String], rows: &[Vec<Option<SampleCell>>]) -> InferredSchema {
        let claims = Claims {
            enums: true,
            required: true,
            unique: true,
            key: true,
            missing_tokens: false,
        };
        let json = rows
            .iter()
            .flatten()
            .any(|c| matches!(c, Some(SampleCell::Json(_))));
        let mut inference = Inference::new(if json { &[] } else { header }, claims, &[]);
        for row in rows {
            if json {
                let object: Map<String, Json> = header
                    .iter()
                    .zip(row)
                    .filter_map(|(h, c)| match c {
                        Some(SampleCell::Json(v)) => Some((h.clone(), v.clone())),
                        Some(SampleCell::Text(s)) => Some((h.clone(), json!(s))),
                        None => None,
                    })
                    .collect();
                inference.add_object(&object);
            } else {
                inference.add_fields(row.iter().map(|c| match c {
                    Some(SampleCell::Text(s)) => s.as_str(),
                    _ => "",
                }));
            }
        }
        inference.finish()
    }

    fn t(s: &str) -> Option<SampleCell> {
        Some(SampleCell::Text(s.to_owned()))
    }

    fn j(v: serde_json::Value) -> Option<SampleCell> {
        Some(SampleCell::Json(v))
    }

    fn header(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    /// Infers one column from text cells.
    fn one(cells: &[&str]) -> InferredColumn {
        let rows: Vec<Vec<Option<SampleCell>>> = cells
            .iter()
            .map(|c| vec![if c.is_empty() { None } else { t(c) }])
            .collect();
        one_of(rows)
    }

    /// Infers one column from given cells.
    fn one_of(rows: Vec<Vec<Option<SampleCell>>>) -> InferredColumn {
        let mut s = infer_schema(&header(&["col"]), &rows);
        s.columns.remove(0)
    }

    fn ty(cells: &[&str]) -> ColumnType {
        one(cells).r#type
    }

    fn json_ty(cells: Vec<serde_json::Value>) -> ColumnType {
        one_of(cells.into_iter().map(|v| vec![j(v)]).collect()).r#type
    }

    // names

    #[test]
    fn names_are_lowercased_with_separator_runs_collapsed() {
        assert_eq!(column_name_for("First Name"), "first_name");
        assert_eq!(column_name_for("  E-mail  Address!! "), "e_mail_address");
        assert_eq!(column_name_for("__id__"), "id");
        assert_eq!(column_name_for("Prix (€)"), "prix");
        assert_eq!(column_name_for("customerId"), "customerid");
    }

    #[test]
    fn names_start_with_a_letter_and_avoid_the_reserved_prefix() {
        assert_eq!(column_name_for("2021 sales"), "c_2021_sales");
        assert_eq!(column_name_for("Intake Date"), "c_intake_date");
        assert_eq!(column_name_for("intake"), "c_intake");
        assert_eq!(column_name_for("in take"), "in_take");
    }

    #[test]
    fn names_are_cut_to_48_characters_without_a_trailing_underscore() {
        let long = format!("{} b", "a".repeat(47));
        assert_eq!(column_name_for(&long), "a".repeat(47));
        let n = column_name_for(&"x".repeat(100));
        assert_eq!(n, "x".repeat(48));
        let digits = column_name_for(&"9".repeat(100));
        assert_eq!(digits.len(), 48);
        assert!(digits.starts_with("c_9"));
    }

    #[test]
    fn every_name_is_a_valid_identifier() {
        for h in [
            "A",
            "a__b",
            "_",
            "1",
            "Intake_x",
            "ÉTÉ 2020",
            "a-",
            "--a--b--",
            "x y z",
        ] {
            let n = column_name_for(h);
            assert!(Identifier::parse("column", &n).is_ok(), "{h:?} -> {n:?}");
        }
    }

    #[test]
    fn headers_without_letters_or_digits_are_numbered_by_position() {
        assert_eq!(column_name_for("???"), "column");
        let s = infer_schema(&header(&["a", "", "€"]), &[]);
        let names: Vec<&str> = s.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "column_2", "column_3"]);
        assert_eq!(s.columns[1].source, "");
    }

    #[test]
    fn colliding_names_get_numbered_suffixes() {
        let s = infer_schema(&header(&["Name", "name", "NAME!", "a", "a", "a_2"]), &[]);
        let names: Vec<&str> = s.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["name", "name_2", "name_3", "a", "a_3", "a_2"]);
    }

    #[test]
    fn suffixed_names_still_fit_in_48_characters() {
        let long = "y".repeat(60);
        let s = infer_schema(&header(&[&long, &long]), &[]);
        assert_eq!(s.columns[0].name, "y".repeat(48));
        assert_eq!(s.columns[1].name, format!("{}_2", "y".repeat(46)));
    }

    // types

    #[test]
    fn whole_numbers_are_integers() {
        assert_eq!(ty(&["1", "-20", "300", "4.0"]), ColumnType::Integer);
        assert_eq!(ty(&["0", "1", "1", "0"]), ColumnType::Integer);
        assert_eq!(
            json_ty(vec![json!(1), json!(2), json!("3")]),
            ColumnType::Integer
        );
    }

    #[test]
    fn numbers_with_leading_zeros_stay_strings() {
        assert_eq!(ty(&["01234", "02345", "12345"]), ColumnType::String);
        assert_eq!(ty(&["0.5", "0", "10"]), ColumnType::Decimal);
    }

    #[test]
    fn short_fractions_are_decimal_and_others_float() {
        assert_eq!(ty(&["1.5", "2", "3.123456"]), ColumnType::Decimal);
        assert_eq!(ty(&["1.5", "3.1234567"]), ColumnType::Float);
        assert_eq!(ty(&["1.5", "1e3"]), ColumnType::Float);
        assert_eq!(ty(&["99999999999999999999", "1"]), ColumnType::Decimal);
        assert_eq!(json_ty(vec![json!(1.25), json!(3)]), ColumnType::Decimal);
        assert_eq!(json_ty(vec![json!(1e-7), json!(3)]), ColumnType::Float);
    }

    #[test]
    fn boolean_words_are_booleans_but_not_on_off() {
        assert_eq!(
            ty(&["true", "False", "YES", "no", "t", "f", "y", "N"]),
            ColumnType::Boolean
        );
        assert_eq!(
            json_ty(vec![json!(true), json!(false), json!("yes")]),
            ColumnType::Boolean
        );
        assert_eq!(ty(&["on", "off"]), ColumnType::String);
        assert_eq!(ty(&["true", "maybe"]), ColumnType::String);
    }

    #[test]
    fn dates_and_datetimes_are_told_apart() {
        assert_eq!(ty(&["2024-01-01", "1999-12-31"]), ColumnType::Date);
        assert_eq!(
            ty(&["2024-01-01T10:00:00Z", "2024-01-02 11:30"]),
            ColumnType::Datetime
        );
        assert_eq!(
            ty(&["2024-01-01", "2024-01-02T10:00:00+02:00"]),
            ColumnType::Datetime
        );
        assert_eq!(ty(&["2024-02-30", "2024-01-01"]), ColumnType::String);
        assert_eq!(ty(&["2016/01/31", "2016.02.01"]), ColumnType::Date);
        assert_eq!(ty(&["2016/01/01 00:47:36"]), ColumnType::Datetime);
        assert_eq!(ty(&["01/31/2016", "2016-01-02"]), ColumnType::String);
        assert_eq!(ty(&["2016/01-31"]), ColumnType::String);
    }

    #[test]
    fn hyphenated_uuids_are_uuids_but_bare_hex_is_not() {
        assert_eq!(
            ty(&[
                "67e55044-10b1-426f-9247-bb680e5fe0c8",
                "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"
            ]),
            ColumnType::Uuid
        );
        assert_eq!(
            ty(&[
                "67e5504410b1426f9247bb680e5fe0c8",
                "a0eebc999c0b4ef8bb6d6bb9bd380a11"
            ]),
            ColumnType::String
        );
    }

    #[test]
    fn emails_and_urls_are_recognised() {
        assert_eq!(
            ty(&["a@example.com", "b.c@mail.example.org"]),
            ColumnType::Email
        );
        assert_eq!(
            ty(&["https://example.com", "http://x.org/a"]),
            ColumnType::Url
        );
        assert_eq!(ty(&["a@example.com", "https://x.org"]), ColumnType::String);
    }

    #[test]
    fn json_containers_are_json() {
        assert_eq!(
            json_ty(vec![json!({"a": 1}), json!([1, 2])]),
            ColumnType::Json
        );
        assert_eq!(
            json_ty(vec![json!({"a": 1}), json!("text"), json!(3)]),
            ColumnType::Json
        );
        assert_eq!(ty(&[r#"{"a": 1}"#, "[1,2]"]), ColumnType::Json);
        assert_eq!(ty(&[r#"{"a": 1}"#, "plain"]), ColumnType::String);
    }

    #[test]
    fn anything_else_is_a_string() {
        assert_eq!(ty(&["alice", "bob", "42"]), ColumnType::String);
        assert_eq!(
            json_ty(vec![json!("x"), json!(1), json!(true)]),
            ColumnType::String
        );
    }

    #[test]
    fn a_column_with_no_values_is_an_optional_string() {
        let c = one(&["", "", ""]);
        assert_eq!(c.r#type, ColumnType::String);
        assert!(!c.required);
        assert!(!c.unique);
        let c = one_of(vec![vec![j(json!(null))], vec![t("  ")], vec![]]);
        assert_eq!(c.r#type, ColumnType::String);
        assert!(!c.required);
    }

    #[test]
    fn every_inferred_type_accepts_its_own_sample() {
        let samples: [&[&str]; 6] = [
            &["1", "2.0"],
            &["1.5", "2"],
            &["yes", "N"],
            &["2024-01-01T10:00"],
            &["https://x.org"],
            &[r#"{"a":1}"#],
        ];
        for cells in samples {
            let c = one(cells);
            let check = probe(c.r#type, c.values.clone());
            for cell in cells {
                assert!(check.coerce_text(cell).is_ok(), "{cell} as {:?}", c.r#type);
            }
        }
    }

    // enums

    fn repeated(values: &[&str], n: usize) -> Vec<String> {
        values
            .iter()
            .cycle()
            .take(n)
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn small_closed_sets_of_strings_become_sorted_enums() {
        let cells = repeated(&["open", "closed", "pending"], 20);
        let refs: Vec<&str> = cells.iter().map(String::as_str).collect();
        let c = one(&refs);
        assert_eq!(c.r#type, ColumnType::Enum);
        assert_eq!(
            c.values,
            Some(vec!["closed".into(), "open".into(), "pending".into()])
        );
    }

    #[test]
    fn enums_need_twenty_values_at_most_ten_distinct_and_short_ones() {
        let few = repeated(&["a", "b"], 19);
        let refs: Vec<&str> = few.iter().map(String::as_str).collect();
        assert_eq!(ty(&refs), ColumnType::String);

        let names: Vec<String> = (0..11).map(|i| format!("v{i}")).collect();
        let many = repeated(&names.iter().map(String::as_str).collect::<Vec<_>>(), 30);
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(ty(&refs), ColumnType::String);

        let long = "l".repeat(41);
        let wide = repeated(&["a", &long], 20);
        let refs: Vec<&str> = wide.iter().map(String::as_str).collect();
        assert_eq!(ty(&refs), ColumnType::String);
    }

    #[test]
    fn enum_values_are_trimmed_like_enum_coercion_trims() {
        let cells = repeated(&[" red", "red ", "blue"], 21);
        let refs: Vec<&str> = cells.iter().map(String::as_str).collect();
        let c = one(&refs);
        assert_eq!(c.values, Some(vec!["blue".into(), "red".into()]));
    }

    #[test]
    fn max_length_is_never_proposed() {
        assert_eq!(one(&["abc", "defgh"]).max_length, None);
    }

    // required and unique

    #[test]
    fn columns_without_nulls_are_required() {
        assert!(one(&["a", "b"]).required);
        assert!(!one(&["a", ""]).required);
        let short_row = one_of(vec![vec![t("a")], vec![]]);
        assert!(!short_row.required);
        let s = infer_schema(&header(&["a"]), &[]);
        assert!(!s.columns[0].required);
        assert_eq!(s.sampled_rows, 0);
    }

    #[test]
    fn columns_with_distinct_values_are_unique() {
        assert!(one(&["a", "b", "c"]).unique);
        assert!(!one(&["a", "b", "a"]).unique);
        assert!(one(&["a", "", "b"]).unique);
        assert!(!one(&["a"]).unique);
    }

    #[test]
    fn uniqueness_compares_coerced_values() {
        assert!(!one(&["1", "1.0", "2"]).unique);
        assert!(!one(&["2024-01-01T00:00:00Z", "2024-01-01T01:00:00+01:00"]).unique);
        // Strings are kept exactly, so padding makes a different value.
        assert!(one(&["x1", "x1 "]).unique);
    }

    // primary key

    fn key_of(names: &[&str], rows: Vec<Vec<Option<SampleCell>>>) -> Vec<String> {
        infer_schema(&header(names), &rows).primary_key
    }

    #[test]
    fn the_key_is_the_first_required_unique_column_of_a_key_type() {
        let rows = vec![
            vec![t("1.5"), t("x"), t("1")],
            vec![t("2.5"), t("y"), t("2")],
        ];
        assert_eq!(key_of(&["price", "label", "n"], rows), ["label"]);
    }

    #[test]
    fn key_like_names_are_preferred() {
        let rows = vec![
            vec![t("x"), t("10"), t("a"), t("7")],
            vec![t("y"), t("11"), t("b"), t("8")],
        ];
        assert_eq!(
            key_of(&["name", "order_code", "customer id", "id"], rows.clone()),
            ["id"]
        );
        assert_eq!(
            key_of(&["name", "order_code", "customer id", "n"], rows.clone()),
            ["customer_id"]
        );
        assert_eq!(
            key_of(&["name", "order_code", "x", "n"], rows.clone()),
            ["order_code"]
        );
        assert_eq!(key_of(&["name", "key", "x", "n"], rows), ["key"]);
    }

    #[test]
    fn columns_that_are_optional_duplicated_or_of_other_types_are_not_keys() {
        let rows = vec![
            vec![t("1"), t("a"), t("2024-01-01"), t("x")],
            vec![None, t("a"), t("2024-01-02"), t("x")],
        ];
        assert!(key_of(&["id", "code", "day", "name"], rows).is_empty());
        assert!(key_of(&["id"], vec![vec![t("1")]]).is_empty());
    }

    #[test]
    fn uuid_columns_can_be_keys() {
        let rows = vec![
            vec![t("67e55044-10b1-426f-9247-bb680e5fe0c8")],
            vec![t("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")],
        ];
        assert_eq!(key_of(&["ref"], rows), ["ref"]);
    }

    #[test]
    fn the_schema_serialises_with_type_and_without_empty_options() {
        let rows = vec![vec![t("1"), t("a")], vec![t("2"), t("b")]];
        let s = infer_schema(&header(&["ID", "Name"]), &rows);
        let v = serde_json::to_value(&s).expect("serialises");
        assert_eq!(
            v,
            json!({
                "columns": [
                    {"name": "id", "source": "ID", "type": "integer", "required": true, "unique": true},
                    {"name": "name", "source": "Name", "type": "string", "required": true, "unique": true},
                ],
                "primary_key": ["id"],
                "sampled_rows": 2,
            })
        );
    }

    // whole sources

    /// Infers from text rows as the one-step load does.
    fn whole(names: &[&str], rows: &[&[&str]]) -> InferredSchema {
        let mut inference = Inference::new(&header(names), Claims::whole_source(false), &[]);
        for row in rows {
            inference.add_fields(row.iter().copied());
        }
        inference.finish()
    }

    fn types_of(s: &InferredSchema) -> Vec<(&str, ColumnType, bool)> {
        s.columns
            .iter()
            .map(|c| (c.name.as_str(), c.r#type, c.required))
            .collect()
    }

    #[test]
    fn missing_tokens_are_missing_in_typed_columns_and_text_in_text_columns() {
        let s = whole(
            &["n", "country", "day"],
            &[
                &["1", "FR", "2024-01-01"],
                &["NA", "NA", "n/a"],
                &["3", "DE", "2024-01-03"],
            ],
        );
        assert_eq!(
            types_of(&s),
            [
                ("n", ColumnType::Integer, false),
                ("country", ColumnType::String, true),
                ("day", ColumnType::Date, false),
            ]
        );
        assert_eq!(s.missing_tokens, ["NA", "n/a"]);
        assert!(s.columns.iter().all(|c| !c.unique));
    }

    #[test]
    fn long_numbers_are_decimals_and_short_exponent_numbers_floats() {
        let s = whole(
            &["pi", "sci", "money"],
            &[
                &["3.14159265358979323846", "1.5e3", "12.50"],
                &["2.5", "2.25e-7", "3"],
            ],
        );
        assert_eq!(
            types_of(&s),
            [
                ("pi", ColumnType::Decimal, true),
                ("sci", ColumnType::Float, true),
                ("money", ColumnType::Decimal, true),
            ]
        );
    }

    #[test]
    fn the_key_of_a_whole_source_is_checked_against_every_value() {
        let rows: Vec<Vec<String>> = (1..=3000)
            .map(|i| vec![(3001 - i).to_string(), format!("c{}", i % 7), i.to_string()])
            .collect();
        let refs: Vec<Vec<&str>> = rows
            .iter()
            .map(|r| r.iter().map(String::as_str).collect())
            .collect();
        let slices: Vec<&[&str]> = refs.iter().map(Vec::as_slice).collect();
        // `id` counts down (remembered values prove it distinct); `customer_id` repeats.
        let s = whole(&["id", "customer_id", "n"], &slices);
        assert_eq!(s.primary_key, ["id"]);
        let s = whole(&["amount", "label", "n"], &slices);
        assert_eq!(
            s.primary_key,
            ["n"],
            "integers that only increase make a key"
        );
        // A sorted run of integers is remembered as its range: values below it still count.
        let sorted: Vec<Vec<String>> = (100..=200)
            .chain(5..=7)
            .map(|i| vec![i.to_string()])
            .collect();
        let sorted_refs: Vec<Vec<&str>> = sorted
            .iter()
            .map(|r| r.iter().map(String::as_str).collect())
            .collect();
        let mut sorted_slices: Vec<&[&str]> = sorted_refs.iter().map(Vec::as_slice).collect();
        assert_eq!(whole(&["id"], &sorted_slices).primary_key, ["id"]);
        sorted_slices.push(&["150"]);
        assert!(whole(&["id"], &sorted_slices).primary_key.is_empty());
        // A value read as an integer early and as text once the column is text is one key.
        let mixed: Vec<&[&str]> = vec![&["1"], &["x"], &["1"]];
        assert!(whole(&["id"], &mixed).primary_key.is_empty());
        let mut repeated = slices.clone();
        repeated.push(&["5", "c1", "5"]);
        let s = whole(&["id", "customer_id", "n"], &repeated);
        assert!(s.primary_key.is_empty(), "{:?}", s.primary_key);
    }
}

#[cfg(test)]
mod merge_tests {
    use super::*;

    fn rows(n: usize) -> Vec<Vec<String>> {
        (0..n)
            .map(|i| {
                vec![
                    (i * 3 + 1).to_string(),
                    if i % 11 == 0 {
                        "NA".into()
                    } else {
                        format!("{}.5", i)
                    },
                    if i % 4 == 0 {
                        "yes".into()
                    } else {
                        "no".into()
                    },
                    format!("c{}", i % 5),
                    if i == n - 1 {
                        String::new()
                    } else {
                        "2024-01-02".into()
                    },
                ]
            })
            .collect()
    }

    fn infer(header: &[String], rows: &[Vec<String>], claims: Claims) -> Inference {
        let mut inference = Inference::new(header, claims, &[]);
        for row in rows {
            inference.add_fields(row.iter().map(String::as_str));
        }
        inference
    }

    #[test]
    fn two_halves_merged_infer_what_the_whole_infers_wherever_the_split() {
        let header: Vec<String> = ["id", "amount", "paid", "code", "day"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let all = rows(200);
        for claims in [
            Claims::whole_source(false),
            Claims::whole_source(true),
            Claims {
                enums: true,
                required: true,
                unique: true,
                key: true,
                missing_tokens: false,
            },
        ] {
            let whole = serde_json::to_value(infer(&header, &all, claims).finish()).unwrap();
            for split in [0, 1, 57, 199, 200] {
                let mut first = infer(&header, &all[..split], claims);
                first.merge(infer(&header, &all[split..], claims));
                let merged = serde_json::to_value(first.finish()).unwrap();
                assert_eq!(merged, whole, "split at {split}");
            }
        }
        // A key that is distinct in each half but not in the whole is no key.
        let mut repeated = rows(100);
        repeated.extend(rows(100));
        let mut first = infer(&header, &repeated[..100], Claims::whole_source(false));
        first.merge(infer(
            &header,
            &repeated[100..],
            Claims::whole_source(false),
        ));
        assert!(first.finish().primary_key.is_empty());
    }
}
