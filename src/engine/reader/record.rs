//! A JSON record parsed with its top-level keys checked: an object that names a field twice
//! would otherwise keep the last value and drop the other without a word.
//!
//! A record's fields are read in place: each key and scalar value is kept as where it lies in
//! the record's text, so that a record of plain keys and scalars costs one allocation for its
//! fields instead of one per key and per value. Only escaped keys and strings, numbers with
//! an exponent (which serde_json rewrites) and nested values are held on their own. What this
//! fast reading cannot vouch for (any error, a nesting near serde_json's limit) is parsed
//! again as before, so results and messages stay those of a whole parse.

use std::borrow::Cow;
use std::collections::HashSet;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use super::flat_record::{KnownKeys, read_flat};
use crate::model::coerce::JsonCell;

/// A JSON object's fields in the order they were written, with the text they were read from
/// (kept to report the record). A list, not a map: a record has few fields, and hashing each
/// key into a map cost more than the rest of the parse.
#[derive(Debug, Clone)]
pub struct JsonFields {
    text: Box<str>,
    fields: Vec<Field>,
    /// The number naming its list of keys, shared by the records with the same keys in the
    /// same order that the scan read while it kept that list; 0 when unknown.
    keys_id: u64,
}

/// Equal when read from the same text into the same keys and values, however each is kept.
impl PartialEq for JsonFields {
    fn eq(&self, other: &JsonFields) -> bool {
        self.text == other.text && self.iter().eq(other.iter())
    }
}

/// One field: its key and its value.
#[derive(Debug, Clone)]
pub(super) struct Field {
    pub(super) key: Text,
    pub(super) value: Slot,
}

/// Text kept as where it lies in the record's text, or on its own when it differs from it.
#[derive(Debug, Clone)]
pub(super) enum Text {
    At(usize, usize),
    Owned(String),
}

/// A field's value.
#[derive(Debug, Clone)]
pub(super) enum Slot {
    Null,
    Bool(bool),
    Number(Text),
    String(Text),
    Parsed(Box<Value>),
}

impl JsonFields {
    /// The fields read from `text`, with the number of their list of keys.
    pub(super) fn new(text: Box<str>, fields: Vec<Field>, keys_id: u64) -> JsonFields {
        JsonFields {
            text,
            fields,
            keys_id,
        }
    }

    /// The number naming this record's list of keys: two records with the same nonzero
    /// number name the same keys in the same order.
    pub fn keys_id(&self) -> u64 {
        self.keys_id
    }

    /// The fields of an object parsed whole.
    pub(super) fn from_values(text: Box<str>, values: Vec<(String, Value)>) -> JsonFields {
        let fields = values
            .into_iter()
            .map(|(k, v)| Field {
                key: Text::Owned(k),
                value: Slot::Parsed(Box::new(v)),
            })
            .collect();
        JsonFields::new(text, fields, 0)
    }

    /// The keys and values, in the order they were written.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, JsonCell<'_>)> {
        self.fields
            .iter()
            .map(|f| (self.resolve(&f.key), self.cell(&f.value)))
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &str> {
        self.fields.iter().map(|f| self.resolve(&f.key))
    }

    /// The value of the field at this position.
    pub fn value(&self, i: usize) -> Option<JsonCell<'_>> {
        self.fields.get(i).map(|f| self.cell(&f.value))
    }

    fn cell<'a>(&'a self, slot: &'a Slot) -> JsonCell<'a> {
        match slot {
            Slot::Null => JsonCell::Null,
            Slot::Bool(b) => JsonCell::Bool(*b),
            Slot::Number(t) => JsonCell::Number(self.resolve(t)),
            Slot::String(t) => JsonCell::String(self.resolve(t)),
            Slot::Parsed(v) => JsonCell::of(v),
        }
    }

    /// How many fields the object has.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether the object has no field.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The keys and values as parsed `serde_json` values, exactly as a whole parse makes them.
    pub fn to_values(&self) -> Vec<(String, Value)> {
        self.iter()
            .map(|(k, v)| {
                let value = match v {
                    JsonCell::Null => Value::Null,
                    JsonCell::Bool(b) => Value::Bool(b),
                    // The text is one serde_json read as a number: read again, it is the same.
                    JsonCell::Number(n) => serde_json::from_str(n).unwrap_or(Value::Null),
                    JsonCell::String(s) => Value::String(s.to_owned()),
                    JsonCell::Nested(v) => v.clone(),
                };
                (k.to_owned(), value)
            })
            .collect()
    }

    /// The text the object was read from.
    pub fn into_text(self) -> Box<str> {
        self.text
    }

    fn resolve<'a>(&'a self, t: &'a Text) -> &'a str {
        t.resolve(&self.text)
    }
}

impl Text {
    /// The text kept, from `text`, the record's text it was read from.
    pub(super) fn resolve<'a>(&'a self, text: &'a str) -> &'a str {
        match self {
            // Positions are taken from this very text, at character boundaries.
            Text::At(start, end) => text.get(*start..*end).unwrap_or_default(),
            Text::Owned(s) => s,
        }
    }
}

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

/// Parses the JSON records of one source, one after the other.
#[derive(Debug, Default)]
pub(super) struct RecordParser {
    known_keys: KnownKeys,
}

impl RecordParser {
    /// Parses one JSON record; a field named twice in its top-level object is refused.
    pub(super) fn parse(&mut self, text: &str) -> Result<Parsed, RecordError> {
        if let Some((fields, keys_id)) = read_flat(text, &mut self.known_keys) {
            return Ok(Parsed::Object(JsonFields::new(
                text.into(),
                fields,
                keys_id,
            )));
        }
        parse_record(text)
    }
}

/// Parses one JSON record without the scan of flat records; a field named twice in its
/// top-level object is refused.
pub(super) fn parse_record(text: &str) -> Result<Parsed, RecordError> {
    // Only an object can repeat a key; anything else parses as it is (and is refused later
    // as not an object).
    if !text.trim_start().starts_with('{') {
        return serde_json::from_str(text)
            .map(Parsed::Other)
            .map_err(RecordError::Json);
    }
    if let Some(fields) = read_in_place(text) {
        return Ok(Parsed::Object(JsonFields::new(text.into(), fields, 0)));
    }
    match serde_json::from_str::<Checked>(text) {
        Ok(Checked(fields)) => Ok(Parsed::Object(JsonFields::from_values(text.into(), fields))),
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

/// The fields of an object read in place, or None when the object must be parsed whole: it
/// is not valid, names a field twice, or holds something the fast reading cannot vouch for.
fn read_in_place(text: &str) -> Option<Vec<Field>> {
    let mut de = serde_json::Deserializer::from_str(text);
    let fields = InPlace { text }.deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(fields)
}

/// The fields a whole parse makes of `text`, or None where it refuses the text.
#[cfg(test)]
pub(super) fn parse_record_whole(text: &str) -> Option<Vec<(String, Value)>> {
    serde_json::from_str::<Checked>(text).ok().map(|c| c.0)
}

/// The start of the error a repeated field raises (then the field's name, quoted).
const REPEATED: &str = "repeated field: ";

/// Fields checked one by one against those before them up to this many; past it, against a
/// set of their names.
pub(super) const COMPARED_FIELDS: usize = 16;

/// The deepest nesting of a field's value that serde_json, parsing the whole record, allows:
/// its limit of 128 levels less the record's own object.
const DEEPEST_VALUE: usize = 126;

/// Reads an object's fields in place from `text`, the whole text being parsed.
struct InPlace<'de> {
    text: &'de str,
}

impl<'de> DeserializeSeed<'de> for InPlace<'de> {
    type Value = Vec<Field>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<Field>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for InPlace<'de> {
    type Value = Vec<Field>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Vec<Field>, A::Error> {
        // Any refusal here sends the record to the whole parse, which says why.
        let refuse = || de::Error::custom("parsed whole");
        // serde_json gives no size hint: room for the usual record, not grown on the way.
        let mut fields: Vec<Field> = Vec::with_capacity(COMPARED_FIELDS);
        let mut names: Option<HashSet<Cow<'de, str>>> = None;
        while let Some(key) = access.next_key_seed(KeySeed)? {
            let repeated = match &mut names {
                Some(names) => !names.insert(key.clone()),
                None => fields.iter().any(|f| self.is(&f.key, &key)),
            };
            if repeated {
                return Err(refuse());
            }
            let raw: &'de RawValue = access.next_value()?;
            let value = self.slot(raw.get()).ok_or_else(refuse)?;
            fields.push(Field {
                key: self.text_of(key),
                value,
            });
            if names.is_none() && fields.len() == COMPARED_FIELDS {
                names = Some(fields.iter().map(|f| self.get(&f.key)).collect());
            }
        }
        Ok(fields)
    }
}

impl<'de> InPlace<'de> {
    /// Where `part`, a slice of the text, lies in it.
    fn span(&self, part: &str) -> Option<(usize, usize)> {
        let start = (part.as_ptr() as usize).checked_sub(self.text.as_ptr() as usize)?;
        let end = start + part.len();
        (end <= self.text.len()).then_some((start, end))
    }

    /// Text borrowed from the record kept as its position; other text on its own.
    fn text_of(&self, s: Cow<'de, str>) -> Text {
        match s {
            Cow::Borrowed(b) => match self.span(b) {
                Some((start, end)) => Text::At(start, end),
                None => Text::Owned(b.to_owned()),
            },
            Cow::Owned(o) => Text::Owned(o),
        }
    }

    /// Whether a kept text is `s`.
    fn is(&self, t: &Text, s: &str) -> bool {
        match t {
            Text::At(start, end) => self.text.get(*start..*end) == Some(s),
            Text::Owned(o) => o == s,
        }
    }

    fn get(&self, t: &Text) -> Cow<'de, str> {
        match t {
            Text::At(start, end) => Cow::Borrowed(self.text.get(*start..*end).unwrap_or_default()),
            Text::Owned(s) => Cow::Owned(s.clone()),
        }
    }

    /// The value of a field from its raw text (valid JSON, without surrounding spaces), or
    /// None when only a whole parse can tell what it is.
    fn slot(&self, raw: &'de str) -> Option<Slot> {
        match raw.as_bytes().first()? {
            b'n' => Some(Slot::Null),
            b't' => Some(Slot::Bool(true)),
            b'f' => Some(Slot::Bool(false)),
            b'"' => {
                let inner = raw.get(1..raw.len().saturating_sub(1))?;
                if inner.contains('\\') {
                    // Unescaped as a whole parse would: a lone surrogate is refused.
                    let s: String = serde_json::from_str(raw).ok()?;
                    Some(Slot::String(Text::Owned(s)))
                } else {
                    Some(Slot::String(self.text_of(Cow::Borrowed(inner))))
                }
            }
            b'[' | b'{' => {
                // Skipped over, the value was not held to serde_json's nesting limit.
                if too_deep(raw) {
                    return None;
                }
                let value: Value = serde_json::from_str(raw).ok()?;
                Some(Slot::Parsed(Box::new(value)))
            }
            _ => Some(Slot::Number(match exponent_text(raw) {
                Some(text) => Text::Owned(text),
                None => self.text_of(Cow::Borrowed(raw)),
            })),
        }
    }
}

/// A number's text as serde_json keeps it when it has an exponent: a lowercase `e` followed
/// by its sign (`1E5` is kept as `1e+5`); None for a number without one, kept as written.
fn exponent_text(raw: &str) -> Option<String> {
    let at = raw.find(['e', 'E'])?;
    let (mantissa, exponent) = (&raw[..at], &raw[at + 1..]);
    let sign = if exponent.starts_with(['+', '-']) {
        ""
    } else {
        "+"
    };
    Some(format!("{mantissa}e{sign}{exponent}"))
}

/// Whether arrays and objects nest deeper than `DEEPEST_VALUE` in a valid JSON value.
fn too_deep(raw: &str) -> bool {
    // Each level takes an opening and a closing byte: a short value cannot be too deep.
    if raw.len() <= 2 * DEEPEST_VALUE {
        return false;
    }
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for b in raw.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest > DEEPEST_VALUE
}

/// A key borrowed from the text unless it has escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(s))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(s.to_owned()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(s))
    }
}

/// An object whose keys are all distinct, parsed whole.
struct Checked(Vec<(String, Value)>);

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
        let mut fields: Vec<(String, Value)> = Vec::with_capacity(access.size_hint().unwrap_or(8));
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
        assert_eq!(fields.to_values()[39].0, "f39");
    }

    #[test]
    fn nested_objects_numbers_and_non_objects_parse_as_before() {
        let Ok(Parsed::Object(fields)) =
            parse_record(r#"{"a": {"x": 1, "y": 12345678901234567890.5}, "b": [1]}"#)
        else {
            panic!("an object parses");
        };
        let fields = fields.to_values();
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

    /// The fields read in place, as values.
    fn in_place(text: &str) -> Option<Vec<(String, Value)>> {
        let fields = read_in_place(text)?;
        Some(JsonFields::new(text.into(), fields, 0).to_values())
    }

    /// Reading in place agrees with the whole parse wherever it answers, and answers for
    /// every valid record that is not nested near the limit.
    fn agrees(text: &str) {
        let fast = in_place(text);
        let slow = parse_record_whole(text);
        if fast.is_some() {
            assert_eq!(fast, slow, "{text}");
        }
        assert_eq!(fast.is_some(), slow.is_some(), "{text}");
    }

    /// The record read in place from `text`; the test fails when it cannot be.
    fn record_in_place(text: &str) -> JsonFields {
        let Some(fields) = read_in_place(text) else {
            panic!("{text} reads in place");
        };
        JsonFields::new(text.into(), fields, 0)
    }

    #[test]
    fn keys_and_strings_with_escapes_are_unescaped() {
        let text =
            r#"{"a\"b": "x\ny", "\u00e9": "caf\u00e9", "plain": "tab\there", "s": "\ud83d\ude00"}"#;
        let record = record_in_place(text);
        let got: Vec<_> = record.iter().collect();
        assert_eq!(
            got,
            vec![
                ("a\"b", JsonCell::String("x\ny")),
                ("é", JsonCell::String("café")),
                ("plain", JsonCell::String("tab\there")),
                ("s", JsonCell::String("😀")),
            ]
        );
        agrees(text);
    }

    #[test]
    fn plain_keys_and_strings_are_borrowed_from_the_text() {
        let text = r#"{"id": 7, "name": "Ada", "ok": true, "none": null}"#;
        let record = record_in_place(text);
        let fields = &record.fields;
        assert!(fields.iter().all(|f| matches!(f.key, Text::At(..))));
        assert!(matches!(fields[1].value, Slot::String(Text::At(..))));
        assert!(matches!(fields[0].value, Slot::Number(Text::At(..))));
        let got: Vec<_> = record.iter().collect();
        assert_eq!(
            got,
            vec![
                ("id", JsonCell::Number("7")),
                ("name", JsonCell::String("Ada")),
                ("ok", JsonCell::Bool(true)),
                ("none", JsonCell::Null),
            ]
        );
        assert_eq!(&*record.into_text(), text);
    }

    #[test]
    fn numbers_keep_the_exact_text_serde_json_keeps() {
        let numbers = [
            "0",
            "-0",
            "7",
            "-7",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "123456789012345678901234567890.000000000000000000001",
            "0.1",
            "-0.0",
            "1e5",
            "1E5",
            "1e+5",
            "1E-5",
            "-2.5e-300",
            "1e400",
            "34e-56789",
        ];
        for n in numbers {
            let text = format!(r#"{{"n": {n}, "m": [{n}]}}"#);
            let Some(fields) = in_place(&text) else {
                panic!("{n} reads in place");
            };
            let expected = serde_json::from_str::<Value>(n).unwrap();
            assert_eq!(fields[0].1, expected, "{n}");
            // The text kept is the one serde_json's number holds, never rounded.
            let record = JsonFields::new(
                text.clone().into(),
                read_in_place(&text).unwrap_or_default(),
                0,
            );
            let Some((_, JsonCell::Number(kept))) = record.iter().next() else {
                panic!("{n} is a number");
            };
            assert_eq!(kept, expected.as_number().unwrap().as_str(), "{n}");
            agrees(&text);
        }
    }

    #[test]
    fn nested_values_are_parsed_as_a_whole_parse_would() {
        let text = r#"{"a": {"x": 1, "y": 12345678901234567890.5, "x": 2}, "b": [1, "\u00e9", {"c": null}], "e": {}, "f": []}"#;
        agrees(text);
        let fields = in_place(text).unwrap_or_default();
        assert_eq!(fields[0].1["y"].to_string(), "12345678901234567890.5");
        assert_eq!(fields[1].1, serde_json::json!([1, "é", {"c": null}]));
    }

    #[test]
    fn values_nested_near_the_limit_get_the_whole_parse_answer() {
        for depth in 120..135 {
            // Brackets inside a string do not nest.
            let text = format!(
                r#"{{"a": {}"{}"{}, "b": 1}}"#,
                "[".repeat(depth),
                "[".repeat(300),
                "]".repeat(depth)
            );
            agrees(&text);
            let fast = parse_record(&text).ok().map(|p| match p {
                Parsed::Object(o) => o.to_values(),
                Parsed::Other(_) => Vec::new(),
            });
            assert_eq!(fast, parse_record_whole(&text), "depth {depth}");
        }
    }

    #[test]
    fn a_field_named_twice_in_other_spellings_is_refused() {
        for text in [
            r#"{"a": 1, "\u0061": 2}"#,
            r#"{"\u0061": 1, "a": 2}"#,
            r#"{"\u0061": 1, "\u0061": 2}"#,
        ] {
            assert!(read_in_place(text).is_none(), "{text}");
            match parse_record(text) {
                Err(RecordError::Repeated(name)) => assert_eq!(name, "a"),
                _ => panic!("{text}: a repeated field must be refused"),
            }
        }
        // Among many fields, past the ones compared one by one.
        let mut many: Vec<String> = (0..40).map(|i| format!("\"f{i}\": {i}")).collect();
        many.push(r#""f\u0033": 0"#.into());
        let text = format!("{{{}}}", many.join(", "));
        assert!(read_in_place(&text).is_none());
    }

    #[test]
    fn invalid_records_get_the_whole_parse_error() {
        for text in [
            r#"{"a": "\ud800"}"#,
            r#"{"a": ["\ud800"]}"#,
            r#"{"a": 01}"#,
            r#"{"a": 1.}"#,
            r#"{"a": 1e}"#,
            r#"{"a": tru}"#,
            r#"{"a": "x	y"}"#,
            r#"{"a": 1} x"#,
            r#"{"a": 1,}"#,
            r#"{"a" 1}"#,
        ] {
            assert!(read_in_place(text).is_none(), "{text}");
            let expected = serde_json::from_str::<Checked>(text)
                .err()
                .map(|e| e.to_string());
            match parse_record(text) {
                Err(RecordError::Json(e)) => assert_eq!(Some(e.to_string()), expected),
                _ => panic!("{text} must be refused"),
            }
        }
    }

    #[test]
    fn json_test_suite_values_read_in_place_as_parsed_whole() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/testdata/JSONTestSuite/test_parsing");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            println!("skipped: {} is absent", dir.display());
            return;
        };
        let mut seen = 0;
        for entry in entries.flatten() {
            let Ok(content) = std::fs::read(entry.path()) else {
                continue;
            };
            seen += 1;
            // A record's text is valid UTF-8 by the time it is parsed.
            let Ok(content) = String::from_utf8(content) else {
                continue;
            };
            // Each file as a field's value, and as a record itself.
            agrees(&format!("{{\"k\": {content}, \"z\": 1}}"));
            if content.trim_start().starts_with('{') {
                let fast = in_place(&content);
                if fast.is_some() {
                    assert_eq!(fast, parse_record_whole(&content), "{content}");
                }
            }
        }
        assert!(seen > 300);
    }
}
