//! Converting an upload to UTF-8 while it is written to disk: any encoding the WHATWG
//! Encoding Standard names (UTF-16, Windows-125x, ISO-8859-x, Shift_JIS, EUC-KR, GBK, Big5…),
//! decoded by `encoding_rs` as the bytes stream in; UTF-8 passes through untouched, so that
//! the reader can report invalid bytes row by row. A BOM decides the encoding and is dropped.

use encoding_rs::{Decoder, DecoderResult};

/// A source text encoding.
pub type Encoding = &'static encoding_rs::Encoding;

/// The encoding an encoding label names (case-insensitive, as browsers read labels: `utf-8`,
/// `utf-16` (little-endian unless a BOM says otherwise), `utf-16be`, `windows-1252`,
/// `cp1252`, `latin1`, `iso-8859-2`, `shift_jis`, `gbk`…). Like browsers, the labels of
/// ISO-8859-1 read as Windows-1252, which differs only where ISO-8859-1 has control codes.
pub fn parse_encoding(name: &str) -> Option<Encoding> {
    encoding_rs::Encoding::for_label_no_replacement(name.trim().as_bytes())
}

/// A streaming converter to UTF-8.
pub struct Transcoder {
    declared: Encoding,
    /// Decided once the first bytes rule a BOM in or out; None for UTF-8 (passed through).
    decoder: Option<Decoder>,
    decided: bool,
    /// The first bytes, held until they are known not to be (part of) a BOM.
    head: Vec<u8>,
    replaced: u64,
}

impl std::fmt::Debug for Transcoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcoder")
            .field("declared", &self.declared.name())
            .field("decided", &self.decided)
            .field("replaced", &self.replaced)
            .finish()
    }
}

impl Transcoder {
    /// A transcoder for the declared encoding (UTF-8 when none); a BOM at the start overrides it.
    pub fn new(declared: Option<Encoding>) -> Transcoder {
        Transcoder {
            declared: declared.unwrap_or(encoding_rs::UTF_8),
            decoder: None,
            decided: false,
            head: Vec::with_capacity(3),
            replaced: 0,
        }
    }

    /// Converts the next piece of input (split anywhere), appending UTF-8 to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        if !self.decided {
            self.head.extend_from_slice(input);
            let Some((encoding, bom_len)) = detect_bom(&self.head, self.declared) else {
                return;
            };
            self.decide(encoding);
            let head = std::mem::take(&mut self.head);
            self.convert(&head[bom_len..], false, out);
            return;
        }
        self.convert(input, false, out);
    }

    /// Flushes what is pending; returns how many malformed sequences were replaced by U+FFFD
    /// over the whole stream (unpaired UTF-16 surrogates, a trailing odd byte, bytes an
    /// encoding does not define).
    pub fn finish(&mut self, out: &mut Vec<u8>) -> u64 {
        if !self.decided {
            // Too short to hold a whole BOM: what came is content.
            self.decide(self.declared);
            let head = std::mem::take(&mut self.head);
            self.convert(&head, true, out);
        } else {
            self.convert(&[], true, out);
        }
        self.replaced
    }

    /// Whether what is pushed from now on comes out unchanged (UTF-8 text past its BOM).
    pub fn passes_through(&self) -> bool {
        self.decided && self.decoder.is_none()
    }

    fn decide(&mut self, encoding: Encoding) {
        self.decided = true;
        if encoding != encoding_rs::UTF_8 {
            self.decoder = Some(encoding.new_decoder_without_bom_handling());
        }
    }

    fn convert(&mut self, mut input: &[u8], last: bool, out: &mut Vec<u8>) {
        let Some(decoder) = self.decoder.as_mut() else {
            out.extend_from_slice(input);
            return;
        };
        loop {
            let room = decoder
                .max_utf8_buffer_length_without_replacement(input.len())
                .unwrap_or(input.len() * 3 + 16)
                .max(16);
            let start = out.len();
            out.resize(start + room, 0);
            let (result, read, written) =
                decoder.decode_to_utf8_without_replacement(input, &mut out[start..], last);
            out.truncate(start + written);
            input = &input[read..];
            match result {
                DecoderResult::InputEmpty => return,
                DecoderResult::OutputFull => {}
                DecoderResult::Malformed(..) => {
                    self.replaced += 1;
                    out.extend_from_slice("\u{FFFD}".as_bytes());
                }
            }
        }
    }
}

/// The encoding the first bytes imply and the BOM's length, or None while they could still
/// be the start of a BOM.
fn detect_bom(head: &[u8], declared: Encoding) -> Option<(Encoding, usize)> {
    let boms: [(&[u8], Encoding); 3] = [
        (b"\xEF\xBB\xBF", encoding_rs::UTF_8),
        (b"\xFF\xFE", encoding_rs::UTF_16LE),
        (b"\xFE\xFF", encoding_rs::UTF_16BE),
    ];
    for (bom, encoding) in boms {
        if head.starts_with(bom) {
            return Some((encoding, bom.len()));
        }
        if bom.starts_with(head) {
            return None;
        }
    }
    Some((declared, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Transcodes `input` pushed in two pieces split at `at`.
    fn split_at(declared: Option<Encoding>, input: &[u8], at: usize) -> (String, u64) {
        let mut t = Transcoder::new(declared);
        let mut out = Vec::new();
        t.push(&input[..at], &mut out);
        t.push(&input[at..], &mut out);
        let replaced = t.finish(&mut out);
        (String::from_utf8(out).unwrap(), replaced)
    }

    /// Transcodes `input` one byte at a time.
    fn bytewise(declared: Option<Encoding>, input: &[u8]) -> (String, u64) {
        let mut t = Transcoder::new(declared);
        let mut out = Vec::new();
        for b in input {
            t.push(std::slice::from_ref(b), &mut out);
        }
        let replaced = t.finish(&mut out);
        (String::from_utf8(out).unwrap(), replaced)
    }

    fn utf16(text: &str, big_endian: bool, bom: bool) -> Vec<u8> {
        let mut units: Vec<u16> = Vec::new();
        if bom {
            units.push(0xFEFF);
        }
        units.extend(text.encode_utf16());
        units
            .iter()
            .flat_map(|u| {
                if big_endian {
                    u.to_be_bytes()
                } else {
                    u.to_le_bytes()
                }
            })
            .collect()
    }

    const TEXT: &str = "id,name\r\n1,Zoë 😀 €\n2,\"東京\"\n";

    #[test]
    fn utf16_with_a_bom_converts_wherever_the_input_is_split() {
        for big_endian in [false, true] {
            let input = utf16(TEXT, big_endian, true);
            for at in 0..=input.len() {
                // The BOM overrides a wrong declaration.
                for declared in [
                    None,
                    Some(encoding_rs::WINDOWS_1252),
                    Some(encoding_rs::UTF_16LE),
                ] {
                    assert_eq!(
                        split_at(declared, &input, at),
                        (TEXT.to_owned(), 0),
                        "at {at}"
                    );
                }
            }
            assert_eq!(bytewise(None, &input), (TEXT.to_owned(), 0));
        }
    }

    #[test]
    fn utf16_without_a_bom_follows_the_declaration() {
        let le = utf16(TEXT, false, false);
        assert_eq!(
            bytewise(Some(encoding_rs::UTF_16LE), &le),
            (TEXT.to_owned(), 0)
        );
        let be = utf16(TEXT, true, false);
        assert_eq!(
            bytewise(Some(encoding_rs::UTF_16BE), &be),
            (TEXT.to_owned(), 0)
        );
    }

    #[test]
    fn unpaired_surrogates_and_an_odd_byte_become_replacement_characters() {
        // High surrogate then 'a'; a lone low surrogate; a high surrogate cut off by the end
        // of the input (an odd byte after it): one malformed sequence each.
        let input = [
            0xFF, 0xFE, 0x3D, 0xD8, 0x61, 0x00, 0x00, 0xDC, 0x3D, 0xD8, 0x62,
        ];
        for at in 0..=input.len() {
            assert_eq!(
                split_at(None, &input, at),
                ("\u{FFFD}a\u{FFFD}\u{FFFD}".to_owned(), 3),
                "at {at}"
            );
        }
    }

    #[test]
    fn latin1_reads_as_windows_1252_and_other_single_byte_encodings_by_their_tables() {
        let latin1 = parse_encoding("latin1");
        assert_eq!(
            bytewise(latin1, b"na\xEFve \x80 \xFF"),
            ("naïve € ÿ".to_owned(), 0)
        );
        let latin2 = parse_encoding("iso-8859-2");
        assert_eq!(bytewise(latin2, b"\xA3\xF3d\xBC"), ("Łódź".to_owned(), 0));
        let sjis = parse_encoding("shift_jis");
        assert_eq!(
            bytewise(sjis, b"\x93\x8C\x8B\x9E,1\n"),
            ("東京,1\n".to_owned(), 0)
        );
    }

    #[test]
    fn windows_1252_maps_the_c1_range_to_its_table() {
        let (text, replaced) = bytewise(
            Some(encoding_rs::WINDOWS_1252),
            b"\x80 \x81 \x8A \x8D \x8F \x90 \x93x\x94 \x9D \x9F \xE9 \xFF",
        );
        assert_eq!(text, "€ \u{81} Š \u{8D} \u{8F} \u{90} “x” \u{9D} Ÿ é ÿ");
        assert_eq!(replaced, 0);
    }

    #[test]
    fn utf8_passes_through_without_its_bom() {
        let input = "\u{FEFF}a,é\n\u{FEFF}b".as_bytes();
        for at in 0..=input.len() {
            assert_eq!(split_at(None, input, at), ("a,é\n\u{FEFF}b".to_owned(), 0));
        }
        // Invalid UTF-8 is left for the reader to report per row.
        let mut t = Transcoder::new(Some(encoding_rs::UTF_8));
        let mut out = Vec::new();
        t.push(b"a\xFFb", &mut out);
        assert_eq!(t.finish(&mut out), 0);
        assert_eq!(out, b"a\xFFb");
        // A UTF-8 BOM overrides a declared single-byte encoding.
        assert_eq!(
            bytewise(Some(encoding_rs::WINDOWS_1252), "\u{FEFF}é".as_bytes()),
            ("é".to_owned(), 0)
        );
    }

    #[test]
    fn short_inputs_that_start_like_a_bom_are_content() {
        assert_eq!(
            bytewise(Some(encoding_rs::WINDOWS_1252), b"\xEF\xBB"),
            ("ï»".to_owned(), 0)
        );
        assert_eq!(
            bytewise(Some(encoding_rs::WINDOWS_1252), b"\xFE"),
            ("þ".to_owned(), 0)
        );
        assert_eq!(bytewise(None, b""), (String::new(), 0));
    }

    #[test]
    fn encoding_names_parse_case_insensitively() {
        for (name, want) in [
            ("UTF-8", encoding_rs::UTF_8),
            ("utf8", encoding_rs::UTF_8),
            ("utf-16", encoding_rs::UTF_16LE),
            ("UTF-16LE", encoding_rs::UTF_16LE),
            ("utf-16be", encoding_rs::UTF_16BE),
            ("Windows-1252", encoding_rs::WINDOWS_1252),
            ("cp1252", encoding_rs::WINDOWS_1252),
            ("latin1", encoding_rs::WINDOWS_1252),
            ("ISO-8859-1", encoding_rs::WINDOWS_1252),
            (" Shift_JIS ", encoding_rs::SHIFT_JIS),
            ("gbk", encoding_rs::GBK),
        ] {
            assert_eq!(parse_encoding(name), Some(want), "{name}");
        }
        assert_eq!(parse_encoding("ebcdic"), None);
        assert_eq!(parse_encoding("replacement"), None);
    }

    #[test]
    fn random_input_converts_the_same_whole_or_byte_by_byte() {
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        for round in 0..500 {
            let input: Vec<u8> = (0..(seed % 40))
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    [0x00, 0xD8, 0xDC, 0xFE, 0xFF, 0xEF, 0xBB, 0xBF, b'a', 0x80]
                        [(seed % 10) as usize]
                })
                .collect();
            let declared = [
                None,
                Some(encoding_rs::UTF_16LE),
                Some(encoding_rs::UTF_16BE),
                Some(encoding_rs::WINDOWS_1252),
                Some(encoding_rs::WINDOWS_1252),
            ][round % 5];
            let mut t = Transcoder::new(declared);
            let mut whole = Vec::new();
            t.push(&input, &mut whole);
            let replaced = t.finish(&mut whole);
            let mut t = Transcoder::new(declared);
            let mut pieces = Vec::new();
            for b in &input {
                t.push(std::slice::from_ref(b), &mut pieces);
            }
            assert_eq!(t.finish(&mut pieces), replaced);
            assert_eq!(pieces, whole, "{declared:?} {input:?}");
            if declared.is_some() {
                assert!(std::str::from_utf8(&whole).is_ok() || input.starts_with(b"\xEF\xBB\xBF"));
            }
            seed = seed.wrapping_add(1);
        }
    }
}
