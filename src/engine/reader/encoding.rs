//! Converting an upload to UTF-8 while it is written to disk: UTF-16 (LE/BE), Windows-1252
//! and Latin-1 are transcoded as they stream in; UTF-8 passes through untouched, so that the
//! reader can report invalid bytes row by row. A BOM decides the encoding and is dropped.

/// A source text encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Utf16Le,
    Utf16Be,
    Windows1252,
    Latin1,
}

/// Parses an encoding name (case-insensitive): utf-8, utf8, utf-16 (little-endian unless a BOM
/// says otherwise), utf-16le, utf-16be, windows-1252, cp1252, latin1, latin-1, iso-8859-1.
pub fn parse_encoding(name: &str) -> Option<Encoding> {
    match name.trim().to_ascii_lowercase().as_str() {
        "utf-8" | "utf8" => Some(Encoding::Utf8),
        "utf-16" | "utf-16le" => Some(Encoding::Utf16Le),
        "utf-16be" => Some(Encoding::Utf16Be),
        "windows-1252" | "cp1252" => Some(Encoding::Windows1252),
        "latin1" | "latin-1" | "iso-8859-1" => Some(Encoding::Latin1),
        _ => None,
    }
}

/// Windows-1252's characters for bytes 0x80–0x9F; the five undefined bytes map to the C1
/// control with the same number, as WHATWG does.
const CP1252_HIGH: [char; 32] = [
    '\u{20AC}', '\u{0081}', '\u{201A}', '\u{0192}', '\u{201E}', '\u{2026}', '\u{2020}', '\u{2021}',
    '\u{02C6}', '\u{2030}', '\u{0160}', '\u{2039}', '\u{0152}', '\u{008D}', '\u{017D}', '\u{008F}',
    '\u{0090}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}', '\u{2014}',
    '\u{02DC}', '\u{2122}', '\u{0161}', '\u{203A}', '\u{0153}', '\u{009D}', '\u{017E}', '\u{0178}',
];

/// A streaming converter to UTF-8.
#[derive(Debug)]
pub struct Transcoder {
    declared: Encoding,
    /// Decided once the first bytes rule a BOM in or out.
    encoding: Option<Encoding>,
    /// The first bytes, held until they are known not to be (part of) a BOM.
    head: Vec<u8>,
    /// UTF-16: an odd byte waiting for its pair, and a high surrogate waiting for its low one.
    odd_byte: Option<u8>,
    high_surrogate: Option<u16>,
    replaced: u64,
}

impl Transcoder {
    /// A transcoder for the declared encoding (UTF-8 when none); a BOM at the start overrides it.
    pub fn new(declared: Option<Encoding>) -> Transcoder {
        Transcoder {
            declared: declared.unwrap_or(Encoding::Utf8),
            encoding: None,
            head: Vec::with_capacity(3),
            odd_byte: None,
            high_surrogate: None,
            replaced: 0,
        }
    }

    /// Converts the next piece of input (split anywhere), appending UTF-8 to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let encoding = match self.encoding {
            Some(e) => e,
            None => {
                self.head.extend_from_slice(input);
                let Some((encoding, bom_len)) = detect_bom(&self.head, self.declared) else {
                    return;
                };
                self.encoding = Some(encoding);
                let head = std::mem::take(&mut self.head);
                self.convert(encoding, &head[bom_len..], out);
                return;
            }
        };
        self.convert(encoding, input, out);
    }

    /// Flushes what is pending; returns how many malformed sequences were replaced by U+FFFD
    /// over the whole stream (unpaired UTF-16 surrogates, an odd trailing byte).
    pub fn finish(&mut self, out: &mut Vec<u8>) -> u64 {
        if self.encoding.is_none() {
            // Too short to hold a whole BOM: what came is content.
            let encoding = self.declared;
            self.encoding = Some(encoding);
            let head = std::mem::take(&mut self.head);
            self.convert(encoding, &head, out);
        }
        if self.high_surrogate.take().is_some() {
            self.replace(out);
        }
        if self.odd_byte.take().is_some() {
            self.replace(out);
        }
        self.replaced
    }

    fn convert(&mut self, encoding: Encoding, input: &[u8], out: &mut Vec<u8>) {
        match encoding {
            Encoding::Utf8 => out.extend_from_slice(input),
            Encoding::Latin1 => single_byte(input, out, char::from),
            Encoding::Windows1252 => single_byte(input, out, |b| match b {
                0x80..=0x9F => CP1252_HIGH[usize::from(b - 0x80)],
                _ => char::from(b),
            }),
            Encoding::Utf16Le => self.utf16(input, out, u16::from_le_bytes),
            Encoding::Utf16Be => self.utf16(input, out, u16::from_be_bytes),
        }
    }

    fn utf16(&mut self, mut input: &[u8], out: &mut Vec<u8>, unit: fn([u8; 2]) -> u16) {
        out.reserve(input.len() + input.len() / 2);
        if let Some(first) = self.odd_byte.take() {
            let Some((&second, rest)) = input.split_first() else {
                self.odd_byte = Some(first);
                return;
            };
            self.unit(unit([first, second]), out);
            input = rest;
        }
        let mut pairs = input.chunks_exact(2);
        for pair in &mut pairs {
            self.unit(unit([pair[0], pair[1]]), out);
        }
        self.odd_byte = pairs.remainder().first().copied();
    }

    fn unit(&mut self, u: u16, out: &mut Vec<u8>) {
        if let Some(high) = self.high_surrogate.take() {
            if (0xDC00..0xE000).contains(&u) {
                let mut decoded = char::decode_utf16([high, u]);
                match decoded.next() {
                    Some(Ok(c)) => push_char(out, c),
                    _ => self.replace(out),
                }
                return;
            }
            self.replace(out);
        }
        if (0xD800..0xDC00).contains(&u) {
            self.high_surrogate = Some(u);
            return;
        }
        match char::from_u32(u32::from(u)) {
            Some(c) => push_char(out, c),
            // A lone low surrogate.
            None => self.replace(out),
        }
    }

    fn replace(&mut self, out: &mut Vec<u8>) {
        self.replaced += 1;
        push_char(out, char::REPLACEMENT_CHARACTER);
    }
}

/// The encoding the first bytes imply and the BOM's length, or None while they could still
/// be the start of a BOM.
fn detect_bom(head: &[u8], declared: Encoding) -> Option<(Encoding, usize)> {
    const BOMS: [(&[u8], Encoding); 3] = [
        (b"\xEF\xBB\xBF", Encoding::Utf8),
        (b"\xFF\xFE", Encoding::Utf16Le),
        (b"\xFE\xFF", Encoding::Utf16Be),
    ];
    for (bom, encoding) in BOMS {
        if head.starts_with(bom) {
            return Some((encoding, bom.len()));
        }
        if bom.starts_with(head) {
            return None;
        }
    }
    Some((declared, 0))
}

fn single_byte(input: &[u8], out: &mut Vec<u8>, map: impl Fn(u8) -> char) {
    out.reserve(input.len());
    for &b in input {
        if b.is_ascii() {
            out.push(b);
        } else {
            push_char(out, map(b));
        }
    }
}

fn push_char(out: &mut Vec<u8>, c: char) {
    let mut buf = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
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
                for declared in [None, Some(Encoding::Latin1), Some(Encoding::Utf16Le)] {
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
        assert_eq!(bytewise(Some(Encoding::Utf16Le), &le), (TEXT.to_owned(), 0));
        let be = utf16(TEXT, true, false);
        assert_eq!(bytewise(Some(Encoding::Utf16Be), &be), (TEXT.to_owned(), 0));
    }

    #[test]
    fn unpaired_surrogates_and_an_odd_byte_become_replacement_characters() {
        // High surrogate then 'a'; a lone low surrogate; a high surrogate at the end; odd byte.
        let input = [
            0xFF, 0xFE, 0x3D, 0xD8, 0x61, 0x00, 0x00, 0xDC, 0x3D, 0xD8, 0x62,
        ];
        for at in 0..=input.len() {
            assert_eq!(
                split_at(None, &input, at),
                ("\u{FFFD}a\u{FFFD}\u{FFFD}\u{FFFD}".to_owned(), 4),
                "at {at}"
            );
        }
    }

    #[test]
    fn latin1_maps_each_byte_to_its_code_point() {
        let input: Vec<u8> = (0u8..=255).collect();
        let want: String = (0u32..=255).map(|c| char::from_u32(c).unwrap()).collect();
        assert_eq!(bytewise(Some(Encoding::Latin1), &input), (want, 0));
    }

    #[test]
    fn windows_1252_maps_the_c1_range_to_its_table() {
        let (text, replaced) = bytewise(
            Some(Encoding::Windows1252),
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
        let mut t = Transcoder::new(Some(Encoding::Utf8));
        let mut out = Vec::new();
        t.push(b"a\xFFb", &mut out);
        assert_eq!(t.finish(&mut out), 0);
        assert_eq!(out, b"a\xFFb");
        // A UTF-8 BOM overrides a declared single-byte encoding.
        assert_eq!(
            bytewise(Some(Encoding::Latin1), "\u{FEFF}é".as_bytes()),
            ("é".to_owned(), 0)
        );
    }

    #[test]
    fn short_inputs_that_start_like_a_bom_are_content() {
        assert_eq!(
            bytewise(Some(Encoding::Latin1), b"\xEF\xBB"),
            ("ï»".to_owned(), 0)
        );
        assert_eq!(
            bytewise(Some(Encoding::Latin1), b"\xFE"),
            ("þ".to_owned(), 0)
        );
        assert_eq!(bytewise(None, b""), (String::new(), 0));
    }

    #[test]
    fn encoding_names_parse_case_insensitively() {
        for (name, want) in [
            ("UTF-8", Encoding::Utf8),
            ("utf8", Encoding::Utf8),
            ("utf-16", Encoding::Utf16Le),
            ("UTF-16LE", Encoding::Utf16Le),
            ("utf-16be", Encoding::Utf16Be),
            ("Windows-1252", Encoding::Windows1252),
            ("cp1252", Encoding::Windows1252),
            ("latin1", Encoding::Latin1),
            ("Latin-1", Encoding::Latin1),
            ("ISO-8859-1", Encoding::Latin1),
        ] {
            assert_eq!(parse_encoding(name), Some(want), "{name}");
        }
        assert_eq!(parse_encoding("ebcdic"), None);
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
                Some(Encoding::Utf16Le),
                Some(Encoding::Utf16Be),
                Some(Encoding::Windows1252),
                Some(Encoding::Latin1),
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
