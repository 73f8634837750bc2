//! Column names derived from source headers, and how likely a name is to be a key.

use std::collections::HashSet;

use crate::model::Identifier;

/// Longest column name (the `Identifier` limit).
const MAX_NAME: usize = 48;

/// A column name for a source header: lowercase ASCII letters and digits, other runs turned
/// into one `_`, prefixed with `c_` when it would not start with a letter or would start with
/// the reserved `intake`, at most 48 characters. A header with no letter or digit gives
/// `column` (`infer_schema` numbers such columns by position instead).
pub fn column_name_for(source: &str) -> String {
    name_base(source).unwrap_or_else(|| "column".to_owned())
}

/// The name derived from a header, or None when it has no letter or digit.
fn name_base(source: &str) -> Option<String> {
    let mut out = String::with_capacity(source.len().min(MAX_NAME + 2));
    let mut separated = false;
    for c in source.chars() {
        if c.is_ascii_alphanumeric() {
            if separated && !out.is_empty() {
                out.push('_');
            }
            separated = false;
            out.push(c.to_ascii_lowercase());
        } else {
            separated = true;
        }
        // Enough to fill a name even after a `c_` prefix; the rest would be cut anyway.
        if out.len() > MAX_NAME {
            break;
        }
    }
    if out.is_empty() {
        return None;
    }
    if !out.starts_with(|c: char| c.is_ascii_lowercase()) || out.starts_with("intake") {
        out.insert_str(0, "c_");
    }
    let name = fit(&out, MAX_NAME);
    // The rules above produce valid names; the check keeps that true if the rules drift.
    Identifier::parse("column", &name).ok()?;
    Some(name)
}

/// `name` cut to `len` bytes (all ASCII) without a trailing `_`.
fn fit(name: &str, len: usize) -> String {
    name[..name.len().min(len)].trim_end_matches('_').to_owned()
}

/// Names for every header, made distinct with `_2`, `_3`… suffixes. A suffix never takes a
/// name another header derives, so `a, a, a_2` gives `a, a_3, a_2`.
pub fn unique_names(header: &[String]) -> Vec<String> {
    let bases: Vec<String> = header
        .iter()
        .enumerate()
        .map(|(i, h)| name_base(h).unwrap_or_else(|| format!("column_{}", i + 1)))
        .collect();
    let derived: HashSet<&str> = bases.iter().map(String::as_str).collect();
    let mut used: HashSet<String> = HashSet::with_capacity(bases.len());
    let mut names = Vec::with_capacity(bases.len());
    for base in &bases {
        let name = if used.contains(base) {
            (2..)
                .map(|k| {
                    let suffix = format!("_{k}");
                    format!("{}{suffix}", fit(base, MAX_NAME - suffix.len()))
                })
                .find(|n| !used.contains(n) && !derived.contains(n.as_str()))
                .unwrap_or_else(|| base.clone())
        } else {
            base.clone()
        };
        used.insert(name.clone());
        names.push(name);
    }
    names
}

/// Lower is a likelier key: `id`, then `…_id`, then key/code names, then anything else.
pub fn key_rank(name: &str) -> u8 {
    if name == "id" {
        0
    } else if name.ends_with("_id") {
        1
    } else if ["key", "code"]
        .iter()
        .any(|w| name == *w || name.strip_suffix(w).is_some_and(|p| p.ends_with('_')))
    {
        2
    } else {
        3
    }
}
