//! Compressed uploads: a gzip body (one member or several, as `gzip` and `cat a.gz b.gz`
//! write them) is inflated as it streams in, recognised by its magic bytes, whatever its
//! name or content type says. Anything else passes through untouched.

use std::io::Write;

use flate2::write::MultiGzDecoder;

/// The first bytes of a gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Why a compressed upload cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("the gzip-compressed upload is damaged: {0}")]
pub struct Damaged(String);

/// A streaming inflater that decides from the first bytes whether there is anything to do.
pub struct Inflater {
    state: State,
    gzip: bool,
}

enum State {
    /// Fewer bytes than the magic came so far.
    Sniffing(Vec<u8>),
    Plain,
    Gzip(Box<MultiGzDecoder<Vec<u8>>>),
}

impl Default for Inflater {
    fn default() -> Self {
        Inflater {
            state: State::Sniffing(Vec::with_capacity(GZIP_MAGIC.len())),
            gzip: false,
        }
    }
}

impl Inflater {
    /// The compression found, once the first bytes came (None: not compressed).
    pub fn compression(&self) -> Option<&'static str> {
        self.gzip.then_some("gzip")
    }

    /// Takes the next piece of the upload (split anywhere), appending what it holds to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), Damaged> {
        if let State::Sniffing(head) = &mut self.state {
            head.extend_from_slice(input);
            if head.len() < GZIP_MAGIC.len() {
                return Ok(());
            }
            let head = std::mem::take(head);
            self.gzip = head.starts_with(&GZIP_MAGIC);
            self.state = if self.gzip {
                State::Gzip(Box::new(MultiGzDecoder::new(Vec::new())))
            } else {
                State::Plain
            };
            return self.feed(&head, out);
        }
        self.feed(input, out)
    }

    /// Ends the upload: flushes what is pending, and fails when a gzip stream was cut short.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), Damaged> {
        match std::mem::replace(&mut self.state, State::Plain) {
            State::Sniffing(head) => out.extend_from_slice(&head),
            State::Plain => {}
            State::Gzip(decoder) => {
                let inflated = decoder.finish().map_err(|e| Damaged(e.to_string()))?;
                out.extend_from_slice(&inflated);
            }
        }
        Ok(())
    }

    fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), Damaged> {
        match &mut self.state {
            State::Sniffing(_) | State::Plain => out.extend_from_slice(input),
            State::Gzip(decoder) => {
                decoder
                    .write_all(input)
                    .map_err(|e| Damaged(e.to_string()))?;
                out.append(decoder.get_mut());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).expect("compress");
        e.finish().expect("compress")
    }

    /// Inflates `input` pushed in pieces of `size` bytes.
    fn inflate(input: &[u8], size: usize) -> Result<(Vec<u8>, Option<&'static str>), Damaged> {
        let mut inflater = Inflater::default();
        let mut out = Vec::new();
        for piece in input.chunks(size.max(1)) {
            inflater.push(piece, &mut out)?;
        }
        let compression = inflater.compression();
        inflater.finish(&mut out)?;
        Ok((out, compression))
    }

    #[test]
    fn gzip_members_inflate_however_the_input_is_split_and_plain_input_passes() {
        let text = b"id,name\n1,Ann\n2,Bob\n".repeat(100);
        let mut two = gzip(&text[..1000]);
        two.extend(gzip(&text[1000..]));
        for size in [1, 2, 3, 7, 100, 100_000] {
            assert_eq!(inflate(&two, size).ok(), Some((text.clone(), Some("gzip"))));
            assert_eq!(inflate(&text, size).ok(), Some((text.clone(), None)));
        }
        assert_eq!(inflate(b"a", 1).ok(), Some((b"a".to_vec(), None)));
        assert_eq!(inflate(b"", 1).ok(), Some((Vec::new(), None)));
    }

    #[test]
    fn a_cut_or_damaged_gzip_stream_is_refused() {
        let whole = gzip(b"id\n1\n2\n3\n");
        assert!(inflate(&whole[..whole.len() - 4], 3).is_err());
        assert!(inflate(b"\x1f\x8b\x08\x00\0\0\0\0\0\x03", 4).is_err());
        let mut garbled = whole.clone();
        garbled[12] ^= 0xFF;
        assert!(inflate(&garbled, 5).is_err());
    }
}
