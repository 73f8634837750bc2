//! Container uploads, told apart by their first bytes: a zip archive is a workbook (xlsx,
//! xlsb, ods) or a zip holding one data file; an OLE compound file is an xls workbook.
//!
//! An entry's name is only ever read for its extension (to tell CSV from TSV): it never
//! becomes a path, so `../../etc/passwd` inside an archive is just a name.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use super::workbook::WorkbookKind;

/// The first bytes of a zip archive (its first local file header).
const ZIP_MAGIC: [u8; 4] = *b"PK\x03\x04";
/// The first bytes of an OLE compound file (xls, and doc, msg…).
const OLE_MAGIC: [u8; 8] = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
/// Bytes enough to tell a container from a text or compressed stream.
pub const CONTAINER_SNIFF: usize = OLE_MAGIC.len();
/// The MIME type an OpenDocument spreadsheet declares in its `mimetype` part.
const ODS_MIMETYPE: &[u8] = b"application/vnd.oasis.opendocument.spreadsheet";

/// A container found by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    Zip,
    Ole,
}

impl Container {
    /// The container the first bytes open, if any.
    pub fn sniff(head: &[u8]) -> Option<Container> {
        if head.starts_with(&ZIP_MAGIC) {
            Some(Container::Zip)
        } else if head.starts_with(&OLE_MAGIC) {
            Some(Container::Ole)
        } else {
            None
        }
    }
}

/// What a spooled container holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Contents {
    Workbook(WorkbookKind),
    /// A zip holding one data file: its index, and its name (for its extension only).
    DataFile {
        index: usize,
        name: String,
    },
}

/// Why a container cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("the zip archive cannot be read: {0}")]
    Damaged(String),
    /// A container that is no data: an empty zip, a text document, several data files.
    #[error("{0}")]
    Unsupported(String),
    #[error("the archive could not be read: {0}")]
    Io(#[from] std::io::Error),
}

/// Opens the zip archive at `path`.
pub fn open(path: &Path) -> Result<zip::ZipArchive<BufReader<File>>, ArchiveError> {
    zip::ZipArchive::new(BufReader::new(File::open(path)?))
        .map_err(|e| ArchiveError::Damaged(e.to_string()))
}

/// Decides what the container at `path` holds.
pub fn inspect(path: &Path, container: Container) -> Result<Contents, ArchiveError> {
    if container == Container::Ole {
        return Ok(Contents::Workbook(WorkbookKind::Xls));
    }
    let mut archive = open(path)?;
    let names: Vec<String> = archive
        .file_names_raw()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    let has = |part: &str| names.iter().any(|n| n == part);
    if has("xl/workbook.xml") {
        return Ok(Contents::Workbook(WorkbookKind::Xlsx));
    }
    if has("xl/workbook.bin") {
        return Ok(Contents::Workbook(WorkbookKind::Xlsb));
    }
    if has("mimetype") && has("content.xml") {
        let mut mimetype = Vec::new();
        archive
            .by_name("mimetype")
            .map_err(|e| ArchiveError::Damaged(e.to_string()))?
            .take(200)
            .read_to_end(&mut mimetype)?;
        if mimetype.trim_ascii() == ODS_MIMETYPE {
            return Ok(Contents::Workbook(WorkbookKind::Ods));
        }
        return Err(ArchiveError::Unsupported(format!(
            "the file is an OpenDocument {:?} document, not a spreadsheet: upload an ods, \
             xlsx or xls workbook, or CSV, TSV, NDJSON or JSON",
            String::from_utf8_lossy(&mimetype).trim()
        )));
    }
    // Folders and the litter of archivers (macOS resource forks, hidden files) hold no data.
    let data: Vec<(usize, &String)> = names
        .iter()
        .enumerate()
        .filter(|(_, n)| {
            let base = n.rsplit('/').next().unwrap_or(n);
            !n.ends_with('/') && !n.starts_with("__MACOSX/") && !base.starts_with('.')
        })
        .collect();
    match data.as_slice() {
        [] => Err(ArchiveError::Unsupported(
            "the zip archive holds no file: there is nothing to import".to_owned(),
        )),
        [(index, name)] => Ok(Contents::DataFile {
            index: *index,
            name: (*name).clone(),
        }),
        several => {
            let listed: Vec<String> = several
                .iter()
                .take(5)
                .map(|(_, n)| format!("{n:?}"))
                .collect();
            let more = if several.len() > 5 { ", …" } else { "" };
            Err(ArchiveError::Unsupported(format!(
                "the zip archive holds {} files ({}{more}): an import reads one; send a zip \
                 holding one file, or each file as a field of a multipart upload",
                several.len(),
                listed.join(", ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zip_of(entries: &[(&str, &[u8])]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().expect("temp");
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, data) in entries {
            zip.start_file(*name, zip::write::SimpleFileOptions::default())
                .expect("entry");
            zip.write_all(data).expect("write");
        }
        let bytes = zip.finish().expect("finish").into_inner();
        file.write_all(&bytes).expect("write");
        file
    }

    #[test]
    fn a_zip_is_told_apart_by_its_parts() {
        let xlsx = zip_of(&[("[Content_Types].xml", b""), ("xl/workbook.xml", b"")]);
        assert_eq!(
            inspect(xlsx.path(), Container::Zip).ok(),
            Some(Contents::Workbook(WorkbookKind::Xlsx))
        );
        let ods = zip_of(&[("mimetype", ODS_MIMETYPE), ("content.xml", b"")]);
        assert_eq!(
            inspect(ods.path(), Container::Zip).ok(),
            Some(Contents::Workbook(WorkbookKind::Ods))
        );
        let one = zip_of(&[("__MACOSX/._x", b""), ("dir/../../orders.tsv", b"a\tb\n")]);
        assert_eq!(
            inspect(one.path(), Container::Zip).ok(),
            Some(Contents::DataFile {
                index: 1,
                name: "dir/../../orders.tsv".into()
            })
        );
        let two = zip_of(&[("a.csv", b"x\n"), ("b.csv", b"y\n")]);
        assert_eq!(
            inspect(two.path(), Container::Zip)
                .expect_err("two files")
                .to_string(),
            "the zip archive holds 2 files (\"a.csv\", \"b.csv\"): an import reads one; send a \
             zip holding one file, or each file as a field of a multipart upload"
        );
        let odt = zip_of(&[
            ("mimetype", b"application/vnd.oasis.opendocument.text"),
            ("content.xml", b""),
        ]);
        assert!(inspect(odt.path(), Container::Zip).is_err());
    }
}
