//! A JSON record parsed with its top-level keys checked: an object that names a field twice
//! would otherwise keep the last value and drop the other without a word.

use std::collections::HashSet;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

/// An object's fields in the order they were written. A list, not a map: a record has few
/// fields, and hashing each key into a map cost more than the rest of the parse.
pub type JsonFields = Vec<(String, Value)>;

/// A parsed JSON record: an object, or another value (which is refused as not an object).
pub(super) enum Parsed {
    Object(JsonFields),
    Other(Value),
}

/// How a record's text failed to parse.
pub(super) enum RecordError {
    /// The top-level object names this field more than once.
    Repeated(String),
    /// The text is not JSON.
    Json(serde_json::Error),
}

/// Parses one JSON record; a field named twice in its top-level object is refused.
pub(super) fn parse_record(text: &str) -> Result<Parsed, RecordError> {
    // Only an object can repeat a key; anything else parses as it is (and is refused later
    // as not an object).
    if !text.trim_start().starts_with('{') {
        return serde_json::from_str(text)
            .map(Parsed::Other)
            .map_err(RecordError::Json);
    }
    match serde_json::from_str::<Checked>(text) {
        Ok(Checked(fields)) => Ok(Parsed::Object(fields)),
        Err(e) => {
            let message = e.to_string();
            match message.strip_prefix(REPEATED) {
                Some(rest) => {
                    // The field's name, as quoted by the visitor below, before serde_json's
                    // " at line L column C".
                    let name = rest.rsplit_once(" at line ").map_or(rest, |(n, _)| n);
                    let name = serde_json::from_str::<String>(name).unwrap_or_else(|_| name.into());
                    Err(RecordError::Repeated(name))
                }
                None => Err(RecordError::Json(e)),
            }
        }
    }
}

/// The start of the error a repeated field raises (then the field's name, quoted).
const REPEATED: &str = "repeated field: ";

/// Fields checked one by one against those before them up to this many; past it, against a
/// set of their names.
const COMPARED_FIELDS: usize = 16;

/// An object whose keys are all distinct.
struct Checked(JsonFields);

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Checked, D::Error> {
        d.deserialize_map(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Checked, A::Error> {
        let mut fields: JsonFields = Vec::with_capacity(access.size_hint().unwrap_or(8));
        let mut names: Option<HashSet<String>> = None;
        while let Some(key) = access.next_key::<String>()? {
            let repeated = match &mut names {
                Some(names) => !names.insert(key.clone()),
                None => fields.iter().any(|(k, _)| *k == key),
            };
            if repeated {
                let quoted = serde_json::to_string(&key).unwrap_or_default();
                return Err(de::Error::custom(format!("{REPEATED}{quoted}")));
            }
            let value: Value = access.next_value()?;
            fields.push((key, value));
            if names.is_none() && fields.len() == COMPARED_FIELDS {
                names = Some(fields.iter().map(|(k, _)| k.clone()).collect());
            }
        }
        Ok(Checked(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_named_twice_is_refused_with_its_name() {
        match parse_record(r#"{"id": 1, "na\"me": "a", "na\"me": "b"}"#) {
            Err(RecordError::Repeated(name)) => assert_eq!(name, "na\"me"),
            _ => panic!("a repeated field must be refused"),
        }
    }

    #[test]
    fn a_field_named_twice_among_many_is_refused_too() {
        let mut text = (0..40)
            .map(|i| format!("\"f{i}\": {i}"))
            .collect::<Vec<_>>();
        text.push("\"f3\": 0".into());
        match parse_record(&format!("{{{}}}", text.join(", "))) {
            Err(RecordError::Repeated(name)) => assert_eq!(name, "f3"),
            _ => panic!("a repeated field must be refused"),
        }
        let distinct = (0..40)
            .map(|i| format!("\"f{i}\": {i}"))
            .collect::<Vec<_>>();
        let Ok(Parsed::Object(fields)) = parse_record(&format!("{{{}}}", distinct.join(", ")))
        else {
            panic!("distinct fields parse");
        };
        assert_eq!(fields.len(), 40);
        assert_eq!(fields[39].0, "f39");
    }

    #[test]
    fn nested_objects_numbers_and_non_objects_parse_as_before() {
        let Ok(Parsed::Object(fields)) =
            parse_record(r#"{"a": {"x": 1, "y": 12345678901234567890.5}, "b": [1]}"#)
        else {
            panic!("an object parses");
        };
        assert_eq!(fields[0].0, "a");
        assert_eq!(fields[0].1["y"].to_string(), "12345678901234567890.5");
        assert_eq!(fields[1], ("b".to_owned(), serde_json::json!([1])));
        assert!(matches!(
            parse_record("[1, 2]"),
            Ok(Parsed::Other(Value::Array(_)))
        ));
        assert!(matches!(
            parse_record("{\"a\": }"),
            Err(RecordError::Json(_))
        ));
    }
}
