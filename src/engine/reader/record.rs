//! A JSON record parsed with its top-level keys checked: an object that names a field twice
//! would otherwise keep the last value and drop the other without a word.

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

/// How a record's text failed to parse.
pub(super) enum RecordError {
    /// The top-level object names this field more than once.
    Repeated(String),
    /// The text is not JSON.
    Json(serde_json::Error),
}

/// Parses one JSON record; a field named twice in its top-level object is refused.
pub(super) fn parse_record(text: &str) -> Result<Value, RecordError> {
    // Only an object can repeat a key; anything else parses as it is (and is refused later
    // as not an object).
    if !text.trim_start().starts_with('{') {
        return serde_json::from_str(text).map_err(RecordError::Json);
    }
    match serde_json::from_str::<Checked>(text) {
        Ok(Checked(map)) => Ok(Value::Object(map)),
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

/// An object whose keys are all distinct.
struct Checked(Map<String, Value>);

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
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                let quoted = serde_json::to_string(&key).unwrap_or_default();
                return Err(de::Error::custom(format!("{REPEATED}{quoted}")));
            }
            let value: Value = access.next_value()?;
            map.insert(key, value);
        }
        Ok(Checked(map))
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
    fn nested_objects_numbers_and_non_objects_parse_as_before() {
        let v = parse_record(r#"{"a": {"x": 1, "y": 12345678901234567890.5}, "b": [1]}"#)
            .ok()
            .expect("parses");
        assert_eq!(v["a"]["y"].to_string(), "12345678901234567890.5");
        assert!(matches!(parse_record("[1, 2]"), Ok(Value::Array(_))));
        assert!(matches!(
            parse_record("{\"a\": }"),
            Err(RecordError::Json(_))
        ));
    }
}
