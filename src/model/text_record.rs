//! A delimited record's fields as one UTF-8 text, each field a range of it.

/// A delimited record read as text: its fields' bytes one after another in one exact-size
/// string, checked as UTF-8 once for the whole record, and where each field ends.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TextRecord {
    text: String,
    ends: Vec<usize>,
}

impl TextRecord {
    /// A record of these fields.
    pub fn from_fields<'a>(fields: impl IntoIterator<Item = &'a str>) -> TextRecord {
        let mut record = TextRecord::default();
        for field in fields {
            record.text.push_str(field);
            record.ends.push(record.text.len());
        }
        record
    }

    /// The record of `fields` (the raw fields of a record as read), or the index of its
    /// first field that is not valid UTF-8.
    pub fn read(fields: &csv::ByteRecord) -> Result<TextRecord, usize> {
        // One check of the whole text (much cheaper than one per field), then each end
        // must fall between two characters: a character split by a field boundary leaves
        // both fields invalid.
        let text =
            String::from_utf8(fields.as_slice().to_vec()).map_err(|_| first_invalid(fields))?;
        let mut ends = Vec::with_capacity(fields.len());
        let mut end = 0;
        for field in fields {
            end += field.len();
            if !text.is_char_boundary(end) {
                return Err(first_invalid(fields));
            }
            ends.push(end);
        }
        Ok(TextRecord { text, ends })
    }

    /// Field `i`, if the record has it.
    pub fn get(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)?;
        let start = match i {
            0 => 0,
            _ => self.ends[i - 1],
        };
        self.text.get(start..end)
    }

    /// How many fields the record has.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the record has no field.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The fields in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

/// Shown as its list of fields, as a record is thought of (test failures, logs).
impl std::fmt::Debug for TextRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The index of the first field that is not valid UTF-8 on its own. Called only when the
/// record is not valid text, so some field is not: fields that are each valid UTF-8 make a
/// valid whole, with every boundary between two characters.
fn first_invalid(fields: &csv::ByteRecord) -> usize {
    fields
        .iter()
        .position(|f| std::str::from_utf8(f).is_err())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(fields: &[&[u8]]) -> csv::ByteRecord {
        csv::ByteRecord::from(fields.to_vec())
    }

    #[test]
    fn records_read_back_their_fields() {
        let record =
            TextRecord::read(&raw(&[b"1", "Zoë".as_bytes(), b"", "🚀 x".as_bytes()])).unwrap();
        assert_eq!(record.iter().collect::<Vec<_>>(), ["1", "Zoë", "", "🚀 x"]);
        assert_eq!(record.get(1), Some("Zoë"));
        assert_eq!(record.get(4), None);
        assert_eq!(record.len(), 4);
        assert_eq!(format!("{record:?}"), r#"["1", "Zoë", "", "🚀 x"]"#);
        assert_eq!(record, TextRecord::from_fields(["1", "Zoë", "", "🚀 x"]));
        assert!(TextRecord::read(&raw(&[])).unwrap().is_empty());
    }

    #[test]
    fn the_first_field_that_is_not_utf8_is_named() {
        assert_eq!(
            TextRecord::read(&raw(&[b"ok", b"bad\xff", b"\xfe"])),
            Err(1)
        );
        // A character split between two fields: the whole is valid, neither field is.
        let e_acute = "é".as_bytes();
        assert_eq!(
            TextRecord::read(&raw(&[b"ok", &e_acute[..1], &e_acute[1..]])),
            Err(1)
        );
    }
}
