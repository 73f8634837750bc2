//! The common JSON record read by one scan of its bytes: an object of keys and scalar values
//! (strings, escaped or not, numbers without an exponent, `true`, `false`, `null`).
//!
//! Most records of a file are such objects, and reading them through serde_json's visitor
//! (each value skipped over, then looked at again) took most of the parser thread's time.
//! The scan accepts only what it can vouch for as valid JSON holding exactly these fields;
//! anything else (a nested value, an exponent, a bad escape, a field named twice, any error)
//! answers None, and the record is read as before, so values and messages do not change.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use super::record::{COMPARED_FIELDS, Field, Slot, Text};
use crate::model::TextRecord;

/// Lists of keys kept: the records of a file mostly name the same keys in the same order, or
/// alternate between a few lists (a field left out of some).
const KEPT_LISTS: usize = 4;

/// The lists of keys of the last records the scan read, each under a number: a record whose
/// keys are a list already seen needs neither the check for a repeated key nor (in the
/// validator) the search for each key's column.
#[derive(Debug, Default)]
pub(super) struct KnownKeys {
    lists: Vec<KeyList>,
    /// The list of the last record.
    current: usize,
    /// The list replaced by the next new one, once `KEPT_LISTS` are kept.
    next_replaced: usize,
}

/// One list of distinct keys.
#[derive(Debug, Default)]
struct KeyList {
    keys: TextRecord,
    id: u64,
}

/// The numbers naming lists of keys, unique in the process (0 names none).
static NEXT_KEYS_ID: AtomicU64 = AtomicU64::new(1);

impl KeyList {
    /// Whether these are the keys, in this order.
    fn matches(&self, text: &str, fields: &[Field]) -> bool {
        self.keys.len() == fields.len()
            && fields
                .iter()
                .enumerate()
                .all(|(n, f)| self.keys.get(n) == Some(f.key.resolve(text)))
    }

    /// A list of these keys, under a new number.
    fn of(text: &str, fields: &[Field]) -> KeyList {
        KeyList {
            keys: TextRecord::from_fields(fields.iter().map(|f| f.key.resolve(text))),
            id: NEXT_KEYS_ID.fetch_add(1, Ordering::Relaxed),
        }
    }
}

impl KnownKeys {
    /// The `n`th key of the last record's list.
    fn current_key(&self, n: usize) -> Option<&str> {
        self.lists.get(self.current)?.keys.get(n)
    }

    /// The number of the list of `fields`' keys (`same`: known to be the last record's
    /// list), kept anew when it is not kept yet; None when a key is named twice.
    fn id_of(&mut self, text: &str, fields: &[Field], same: bool) -> Option<u64> {
        if let Some(list) = self.lists.get(self.current)
            && same
            && list.keys.len() == fields.len()
        {
            return Some(list.id);
        }
        if let Some(n) = self.lists.iter().position(|l| l.matches(text, fields)) {
            self.current = n;
            return Some(self.lists[n].id);
        }
        // Kept lists hold distinct keys; a new one is checked.
        if repeats(text, fields) {
            return None;
        }
        let list = KeyList::of(text, fields);
        let id = list.id;
        if self.lists.len() < KEPT_LISTS {
            self.lists.push(list);
            self.current = self.lists.len() - 1;
        } else {
            self.current = self.next_replaced;
            self.lists[self.current] = list;
            self.next_replaced = (self.next_replaced + 1) % KEPT_LISTS;
        }
        Some(id)
    }
}

/// The fields of `text` when it is a flat object this scan vouches for, with the number of
/// its list of keys (that of an earlier record when they are the same); None otherwise.
pub(super) fn read_flat(text: &str, known: &mut KnownKeys) -> Option<(Vec<Field>, u64)> {
    let b = text.as_bytes();
    let mut i = spaces(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = spaces(b, i + 1);
    let room = known.lists.get(known.current).map_or(0, |l| l.keys.len());
    let mut fields: Vec<Field> = Vec::with_capacity(room.max(1));
    // Whether the keys so far are those of the last record, in its order.
    let mut same = true;
    if b.get(i) == Some(&b'}') {
        i += 1;
    } else {
        loop {
            let (key, after_key) = string(b, i)?;
            i = spaces(b, after_key);
            if b.get(i) != Some(&b':') {
                return None;
            }
            i = spaces(b, i + 1);
            let (value, after) = scalar(b, i)?;
            same = same && known.current_key(fields.len()) == Some(key.resolve(text));
            fields.push(Field { key, value });
            i = spaces(b, after);
            match b.get(i) {
                Some(b',') => i = spaces(b, i + 1),
                Some(b'}') => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    if spaces(b, i) != b.len() {
        return None;
    }
    let id = known.id_of(text, &fields, same)?;
    Some((fields, id))
}

/// Whether a key is named twice (as written or unescaped).
fn repeats(text: &str, fields: &[Field]) -> bool {
    if fields.len() <= COMPARED_FIELDS {
        return fields.iter().enumerate().any(|(n, f)| {
            let key = f.key.resolve(text);
            fields[..n].iter().any(|g| g.key.resolve(text) == key)
        });
    }
    let mut names = HashSet::with_capacity(fields.len());
    !fields.iter().all(|f| names.insert(f.key.resolve(text)))
}

/// The position of the first byte at or after `i` that is not JSON whitespace.
fn spaces(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

/// The string starting with its quote at `i` (where its content lies, or the content
/// unescaped when it has escapes) and the position after its closing quote; None for a
/// control character, a bad escape or a lone surrogate (which the parser refuses, saying
/// why), or no string.
fn string(b: &[u8], i: usize) -> Option<(Text, usize)> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let start = i + 1;
    let mut at = start;
    let mut owned: Option<Vec<u8>> = None;
    loop {
        let rest = b.get(at..)?;
        let len = memchr::memchr2(b'"', b'\\', rest)?;
        // A bitwise fold rather than `any`: it runs over the whole piece without a branch
        // per byte, which the compiler turns into wide compares.
        if rest[..len].iter().fold(false, |seen, &c| seen | (c < 0x20)) {
            return None;
        }
        if rest[len] == b'"' {
            let end = at + len;
            let text = match owned {
                None => Text::At(start, end),
                Some(mut out) => {
                    out.extend_from_slice(&rest[..len]);
                    // Pieces of valid UTF-8 cut at ASCII bytes, and whole characters.
                    Text::Owned(String::from_utf8(out).ok()?)
                }
            };
            return Some((text, end + 1));
        }
        let out = owned.get_or_insert_with(Vec::new);
        out.extend_from_slice(&rest[..len]);
        at += len + 1;
        let unescaped = match *b.get(at)? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let (c, after) = unicode_escape(b, at + 1)?;
                at = after - 1;
                c
            }
            _ => return None,
        };
        at += 1;
        let mut utf8 = [0; 4];
        out.extend_from_slice(unescaped.encode_utf8(&mut utf8).as_bytes());
    }
}

/// The character of a `\u` escape whose four hex digits start at `i`, a surrogate pair
/// taking a second escape, and the position after it; None for a lone surrogate.
fn unicode_escape(b: &[u8], i: usize) -> Option<(char, usize)> {
    let first = hex4(b, i)?;
    match first {
        0xD800..=0xDBFF => {
            if b.get(i + 4..i + 6) != Some(b"\\u") {
                return None;
            }
            let second = hex4(b, i + 6)?;
            if !(0xDC00..=0xDFFF).contains(&second) {
                return None;
            }
            let c = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
            Some((char::from_u32(c)?, i + 10))
        }
        _ => Some((char::from_u32(first)?, i + 4)),
    }
}

/// Four hex digits at `i`.
fn hex4(b: &[u8], i: usize) -> Option<u32> {
    let digits = std::str::from_utf8(b.get(i..i + 4)?).ok()?;
    if !digits.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}

/// The scalar value at `i` and the position after it; None for anything else.
fn scalar(b: &[u8], i: usize) -> Option<(Slot, usize)> {
    let literal = |word: &[u8], slot: Slot| {
        (b.get(i..i + word.len()) == Some(word)).then_some((slot, i + word.len()))
    };
    match *b.get(i)? {
        b'"' => string(b, i).map(|(t, after)| (Slot::String(t), after)),
        b't' => literal(b"true", Slot::Bool(true)),
        b'f' => literal(b"false", Slot::Bool(false)),
        b'n' => literal(b"null", Slot::Null),
        b'-' | b'0'..=b'9' => {
            let end = number(b, i)?;
            Some((Slot::Number(Text::At(i, end)), end))
        }
        _ => None,
    }
}

/// The end of a number without an exponent starting at `i` (RFC 8259: an optional minus, no
/// leading zero, a fraction of at least one digit); None for anything else.
fn number(b: &[u8], mut i: usize) -> Option<usize> {
    let digits = |from: usize| from + b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    i = match b.get(i)? {
        b'0' => i + 1,
        b'1'..=b'9' => digits(i),
        _ => return None,
    };
    if b.get(i) == Some(&b'.') {
        let end = digits(i + 1);
        if end == i + 1 {
            return None;
        }
        i = end;
    }
    // An exponent is kept in serde_json's spelling, which the slower reading makes.
    if let Some(b'e' | b'E') = b.get(i) {
        return None;
    }
    Some(i)
}

#[cfg(test)]
mod tests {
    use super::super::record::{JsonFields, parse_record_whole};
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    /// The fields the scan makes of `text`, as values.
    fn scanned(text: &str) -> Option<Vec<(String, Value)>> {
        let (fields, _) = read_flat(text, &mut KnownKeys::default())?;
        Some(JsonFields::new(text.into(), fields, 0).to_values())
    }

    /// The scan agrees with the whole parse wherever it answers.
    fn agrees(text: &str) {
        if let Some(fast) = scanned(text) {
            assert_eq!(Some(fast), parse_record_whole(text), "{text:?}");
        }
    }

    #[test]
    fn flat_records_are_read_by_the_scan() {
        let text = " {\"id\":1,\"email\" : \"a@b.io\",\t\"amount\":-629.81,\"ok\":true,\"no\":false,\"n\":null,\"z\":0,\"e\":\"\"}\r\n";
        let fast = scanned(text).expect("a flat record is scanned");
        assert_eq!(Some(fast), parse_record_whole(text));
        assert_eq!(scanned("{}"), Some(Vec::new()));
        let escaped = r#"{"a\"b": "x\ny", "\u00e9": "caf\u00e9\/", "s": "\ud83d\ude00 \b\f\r\t\\", "z": "\u0000"}"#;
        let fast = scanned(escaped).expect("escapes are scanned");
        assert_eq!(fast[2].1, Value::String("😀 \u{8}\u{c}\r\t\\".into()));
        assert_eq!(Some(fast), parse_record_whole(escaped));
        assert_eq!(
            scanned("{\"é\": \"ü\u{7f}\"}"),
            Some(vec![("é".into(), Value::String("ü\u{7f}".into()))])
        );
    }

    #[test]
    fn what_the_scan_cannot_vouch_for_is_left_to_the_parser() {
        for text in [
            r#"{"a": "x\qy"}"#,
            r#"{"a": "\ud800"}"#,
            r#"{"a": "\udc00\ud800"}"#,
            r#"{"a": "\ud800\u0041"}"#,
            r#"{"a": "\u12"}"#,
            r#"{"a": "\u12g4"}"#,
            r#"{"a\u0062": 1, "ab": 2}"#,
            r#"{"a": [1]}"#,
            r#"{"a": {}}"#,
            r#"{"a": 1e5}"#,
            r#"{"a": 1E5}"#,
            r#"{"a": 1, "a": 2}"#,
            r#"{"a": 01}"#,
            r#"{"a": -}"#,
            r#"{"a": 1.}"#,
            r#"{"a": .5}"#,
            r#"{"a": +1}"#,
            r#"{"a": tru}"#,
            r#"{"a": truex}"#,
            r#"{"a": nul}"#,
            r#"{"a": "x	y"}"#,
            r#"{"a": 1} x"#,
            r#"{"a": 1,}"#,
            r#"{"a" 1}"#,
            r#"{a: 1}"#,
            r#"{"a": 1"#,
            r#"{"a": "1}"#,
            "{\"a\": 1}\u{a0}",
            "\u{a0}{\"a\": 1}",
            r#"[1]"#,
            r#"{"a": 'x'}"#,
        ] {
            assert_eq!(scanned(text), None, "{text}");
        }
    }

    #[test]
    fn a_field_named_twice_among_many_is_left_to_the_parser() {
        let mut many: Vec<String> = (0..40).map(|i| format!("\"f{i}\": {i}")).collect();
        let distinct = format!("{{{}}}", many.join(", "));
        assert_eq!(scanned(&distinct).map(|f| f.len()), Some(40));
        agrees(&distinct);
        // An escaped key among many is compared unescaped: a new name, or a repeat.
        let escaped = format!("{{{}, \"f\\u0034x\": 0}}", many.join(", "));
        assert_eq!(scanned(&escaped).map(|f| f.len()), Some(41));
        agrees(&escaped);
        let repeat = format!("{{{}, \"f\\u00333\": 0}}", many.join(", "));
        assert_eq!(scanned(&repeat), None);
        many.push("\"f33\": 0".into());
        assert_eq!(scanned(&format!("{{{}}}", many.join(", "))), None);
    }

    #[test]
    fn records_naming_the_same_keys_share_a_number() {
        let mut known = KnownKeys::default();
        let mut id = |text: &str| read_flat(text, &mut known).map(|(_, id)| id);
        let ab = id(r#"{"a": 1, "b": 2}"#).expect("scanned");
        assert_ne!(ab, 0);
        assert_eq!(id(r#"{"a":3,"b":"x"}"#), Some(ab));
        let a = id(r#"{"a": 1}"#).expect("scanned");
        assert_ne!(a, ab);
        // A list seen before keeps its number; the same keys in another order do not.
        assert_eq!(id(r#"{"a": 1, "b": 2}"#), Some(ab));
        assert_eq!(id(r#"{"\u0061": 1, "b": 2}"#), Some(ab));
        let ba = id(r#"{"b": 1, "a": 2}"#).expect("scanned");
        assert!(ba != ab && ba != a);
        // A known list's keys as the start of a record whose key repeats one of them.
        assert_eq!(id(r#"{"a": 1, "b": 2, "a": 3}"#), None);
        assert_eq!(id(r#"{"a": 1, "a": 2}"#), None);
        // Past the lists kept, the oldest is forgotten: its keys get a new number.
        for other in ["c", "d", "e"] {
            id(&format!(r#"{{"{other}": 1}}"#)).expect("scanned");
        }
        let again = id(r#"{"a": 1, "b": 2}"#).expect("scanned");
        assert!(again != ab && again != 0);
    }

    /// Pieces of JSON and of things that are almost JSON, joined at random.
    fn piece() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "{", "}", "\"a\"", "\"b\"", "\"\\n\"", "\\", "\\u", "d83d", "dc00", "00e9", ":", ",",
            " ", "\t", "\n", "0", "-", "1", "9", ".", "e", "E", "+", "true", "false", "null",
            "tru", "\"", "x", "[", "]", "\u{1}", "é", "\"c d\"", "00", "-0", "1.5",
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

        /// Whatever the texts, read one after the other, the scan answers only where the
        /// whole parse agrees.
        #[test]
        fn the_scan_never_answers_otherwise_than_the_parser(
            texts in prop::collection::vec(prop::collection::vec(piece(), 0..24), 1..4)
        ) {
            let mut known = KnownKeys::default();
            for pieces in texts {
                let text = format!("{{{}", pieces.concat());
                if let Some((fields, _)) = read_flat(&text, &mut known) {
                    let fast = JsonFields::new(text.as_str().into(), fields, 0).to_values();
                    prop_assert_eq!(Some(fast), parse_record_whole(&text), "{:?}", text);
                }
            }
        }

        /// Flat records written by a serializer are all read by the scan, and as parsed.
        #[test]
        fn flat_records_are_all_scanned(
            fields in prop::collection::vec(("[a-z]{1,6}", prop_oneof![
                any::<i64>().prop_map(Value::from),
                "(?s).{0,8}".prop_map(Value::String),
                any::<bool>().prop_map(Value::from),
                Just(Value::Null),
                (-1e6f64..1e6).prop_map(|x| Value::from((x * 100.0).round() / 100.0)),
            ]), 0..20)
        ) {
            let mut seen = std::collections::HashSet::new();
            let object: serde_json::Map<String, Value> =
                fields.into_iter().filter(|(k, _)| seen.insert(k.clone())).collect();
            let text = Value::Object(object).to_string();
            prop_assert!(scanned(&text).is_some(), "{}", text);
            agrees(&text);
        }
    }
}
