//! Compressed uploads: a gzip body (one member or several, as `gzip` and `cat a.gz b.gz`
//! write them) or a zstd body (one frame or several) is inflated as it streams in,
//! recognised by its magic bytes, whatever its name or content type says. Anything else
//! passes through untouched.

use std::io::Write;

use flate2::write::MultiGzDecoder;
use zstd::stream::raw::Decoder as ZstdRaw;
use zstd::stream::zio::Writer as ZstdWriter;

/// The first bytes of a gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// The first bytes of a zstd frame.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// Bytes enough to tell every magic apart.
const SNIFF_BYTES: usize = ZSTD_MAGIC.len();

/// Why a compressed upload cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("the {kind}-compressed upload is damaged: {message}")]
pub struct Damaged {
    kind: &'static str,
    message: String,
}

impl Damaged {
    /// A damaged stream of compression `kind`.
    pub fn new(kind: &'static str, message: impl std::fmt::Display) -> Damaged {
        Damaged {
            kind,
            message: message.to_string(),
        }
    }
}

/// A streaming inflater that decides from the first bytes whether there is anything to do.
pub struct Inflater {
    state: State,
    compression: Option<&'static str>,
}

enum State {
    /// Fewer bytes than the longest magic came so far.
    Sniffing(Vec<u8>),
    Plain,
    Gzip(Box<MultiGzDecoder<Vec<u8>>>),
    Zstd(Box<ZstdWriter<Vec<u8>, ZstdRaw<'static>>>),
}

impl Default for Inflater {
    fn default() -> Self {
        Inflater {
            state: State::Sniffing(Vec::with_capacity(SNIFF_BYTES)),
            compression: None,
        }
    }
}

impl Inflater {
    /// The compression found (`gzip`, `zstd`), once the first bytes came (None: not
    /// compressed).
    pub fn compression(&self) -> Option<&'static str> {
        self.compression
    }

    /// Takes the next piece of the upload (split anywhere), appending what it holds to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), Damaged> {
        if let State::Sniffing(head) = &mut self.state {
            head.extend_from_slice(input);
            if head.len() < SNIFF_BYTES {
                return Ok(());
            }
            let head = std::mem::take(head);
            self.start(&head)?;
            return self.feed(&head, out);
        }
        self.feed(input, out)
    }

    /// Whether what is pushed from now on comes out unchanged (the upload is not compressed).
    pub fn passes_through(&self) -> bool {
        matches!(self.state, State::Plain)
    }

    /// Picks the decoder the first bytes call for.
    fn start(&mut self, head: &[u8]) -> Result<(), Damaged> {
        self.state = if head.starts_with(&GZIP_MAGIC) {
            self.compression = Some("gzip");
            State::Gzip(Box::new(MultiGzDecoder::new(Vec::new())))
        } else if head.starts_with(&ZSTD_MAGIC) {
            self.compression = Some("zstd");
            let raw = ZstdRaw::new().map_err(|e| Damaged::new("zstd", e))?;
            State::Zstd(Box::new(ZstdWriter::new(Vec::new(), raw)))
        } else {
            State::Plain
        };
        Ok(())
    }

    /// Ends the upload: flushes what is pending, and fails when a compressed stream was cut
    /// short.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), Damaged> {
        if let State::Sniffing(head) = &mut self.state {
            // Shorter than a zstd magic: a gzip magic may still be there (and be cut short).
            let head = std::mem::take(head);
            self.start(&head)?;
            self.feed(&head, out)?;
        }
        match std::mem::replace(&mut self.state, State::Plain) {
            State::Sniffing(_) | State::Plain => {}
            State::Gzip(decoder) => {
                let inflated = decoder.finish().map_err(|e| Damaged::new("gzip", e))?;
                out.extend_from_slice(&inflated);
            }
            State::Zstd(mut writer) => {
                writer.finish().map_err(|e| Damaged::new("zstd", e))?;
                out.append(writer.writer_mut());
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
                    .map_err(|e| Damaged::new("gzip", e))?;
                out.append(decoder.get_mut());
            }
            State::Zstd(writer) => {
                writer
                    .write_all(input)
                    .map_err(|e| Damaged::new("zstd", e))?;
                out.append(writer.writer_mut());
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
    fn zstd_frames_inflate_however_the_input_is_split() {
        let text = b"id,name\n1,Ann\n2,Bob\n".repeat(100);
        let mut two = zstd::encode_all(&text[..1000], 3).expect("compress");
        two.extend(zstd::encode_all(&text[1000..], 19).expect("compress"));
        for size in [1, 2, 3, 5, 100, 100_000] {
            assert_eq!(inflate(&two, size).ok(), Some((text.clone(), Some("zstd"))));
        }
    }

    #[test]
    fn a_cut_or_damaged_zstd_stream_is_refused() {
        let whole = zstd::encode_all(&b"id\n1\n2\n3\n".repeat(50)[..], 3).expect("compress");
        let cut = inflate(&whole[..whole.len() - 3], 3).expect_err("cut short");
        assert!(
            cut.to_string()
                .starts_with("the zstd-compressed upload is damaged")
        );
        let mut garbled = whole.clone();
        garbled[8] ^= 0xFF;
        garbled[9] ^= 0xFF;
        assert!(inflate(&garbled, 5).is_err());
        assert!(inflate(&ZSTD_MAGIC, 1).is_err());
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
