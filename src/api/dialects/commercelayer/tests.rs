//! Unit tests of the dialect's vocabulary and resources.

use super::*;

fn split(p: &str) -> Option<(Vec<&'static str>, Combinator, String)> {
    split_predicate(p).map(|p| {
        (
            p.fields.iter().map(|(n, _)| *n).collect(),
            p.combinator,
            p.matcher_name,
        )
    })
}

#[test]
fn predicates_split_on_the_longest_matcher() {
    let one = |f: &'static str, m: &str| Some((vec![f], Combinator::Or, m.to_owned()));
    assert_eq!(split("status_not_eq"), one("status", "not_eq"));
    assert_eq!(split("reference_origin_eq"), one("reference_origin", "eq"));
    assert_eq!(split("errors_count_gteq"), one("errors_count", "gteq"));
    assert_eq!(
        split("completed_at_not_null"),
        one("completed_at", "not_null")
    );
    assert_eq!(split("created_at_gteq_lt"), one("created_at", "gteq_lt"));
    assert_eq!(
        split("reference_eq_or_null"),
        one("reference", "eq_or_null")
    );
    assert_eq!(
        split("reference_not_i_cont_any"),
        one("reference", "not_i_cont_any")
    );
    assert_eq!(split("status_matches"), one("status", "matches"));
    assert!(split("format_eq").is_none());
    assert!(split("status_like").is_none());
}

#[test]
fn attributes_combine_with_the_first_or_or_and() {
    assert_eq!(
        split("updated_at_or_created_at_gt"),
        Some((
            vec!["updated_at", "created_at"],
            Combinator::Or,
            "gt".into()
        ))
    );
    assert_eq!(
        split("reference_and_reference_origin_cont"),
        Some((
            vec!["reference", "reference_origin"],
            Combinator::And,
            "cont".into()
        ))
    );
    assert!(split("reference_or_bogus_eq").is_none());
}

#[test]
fn like_patterns_match_as_sql_does_without_ascii_case() {
    assert!(like("REF-12", "ref%"));
    assert!(like("REF-12", "%-1_"));
    assert!(!like("REF-12", "%-1"));
    assert!(like("50%", "50\\%"));
    assert!(!like("501", "50\\%"));
    assert!(like("", "%"));
    assert!(like("abcabc", "%b%c"));
}

#[test]
fn plain_dates_and_date_times_without_offset_are_utc() {
    let t = |s: &str| filter_time(s).map(millis);
    assert_eq!(t("2018-01-01").as_deref(), Some("2018-01-01T00:00:00.000Z"));
    assert_eq!(
        t("2018-01-01 12:30").as_deref(),
        Some("2018-01-01T12:30:00.000Z")
    );
    assert_eq!(
        t("2018-01-01T12:30:15").as_deref(),
        Some("2018-01-01T12:30:15.000Z")
    );
    assert_eq!(
        t("2018-01-01T12:30:15+01:00").as_deref(),
        Some("2018-01-01T11:30:15.000Z")
    );
    assert!(t("yesterday").is_none());
}

#[test]
fn every_status_maps_to_one_of_the_four() {
    for s in ImportStatus::ALL {
        let name = status(*s);
        let (_, members) = STATUSES.iter().find(|(n, _)| *n == name).expect("mapped");
        assert!(members.contains(s), "{s}");
    }
}

#[test]
fn a_status_filter_becomes_the_intake_statuses_it_stands_for() {
    let f = filter("p", "status_eq", "completed").ok();
    assert_eq!(
        f,
        Some(Condition::Filter(ImportFilter {
            field: ImportField::Status,
            op: FilterOp::In(vec![
                FilterValue::Text("complete".into()),
                FilterValue::Text("partially_complete".into()),
            ]),
        }))
    );
}

#[test]
fn the_identifier_of_an_input_is_its_key_then_code_then_record() {
    let row = json!({"code": "ABC", "sku": 7});
    assert_eq!(identifier(&row, &["sku".into()], 3), "7");
    assert_eq!(identifier(&row, &[], 3), "ABC");
    assert_eq!(identifier(&json!({"x": 1}), &[], 3), "3");
}
