//! What a file's name tells the CLI: its format (`orders.csv.gz` holds CSV) and the table
//! it loads into by default (`Orders 2024.csv` → `orders_2024`).

use std::path::Path;

use clap::ValueEnum;

/// Source formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FileFormat {
    Csv,
    Tsv,
    Ndjson,
    Json,
}

impl FileFormat {
    /// The format a file name suggests.
    pub fn of_path(path: &Path) -> Option<FileFormat> {
        // A compressed file is named after what it holds: `orders.csv.gz`, `orders.csv.zst`.
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        let name = strip_compression(&name);
        let ext = Path::new(name).extension()?.to_str()?;
        match ext {
            "csv" => Some(FileFormat::Csv),
            "tsv" | "tab" => Some(FileFormat::Tsv),
            "ndjson" | "jsonl" => Some(FileFormat::Ndjson),
            "json" => Some(FileFormat::Json),
            _ => None,
        }
    }

    /// The format's name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            FileFormat::Csv => "csv",
            FileFormat::Tsv => "tsv",
            FileFormat::Ndjson => "ndjson",
            FileFormat::Json => "json",
        }
    }

    /// The `Content-Type` the API reads the format from.
    pub fn content_type(format: Option<FileFormat>) -> &'static str {
        match format {
            Some(FileFormat::Csv) => "text/csv",
            Some(FileFormat::Tsv) => "text/tab-separated-values",
            Some(FileFormat::Ndjson) => "application/x-ndjson",
            Some(FileFormat::Json) => "application/json",
            // Unknown extension: the server sniffs it.
            None => "application/octet-stream",
        }
    }
}

/// A file name without the extension of its compression (`orders.csv.gz` → `orders.csv`).
pub(super) fn strip_compression(name: &str) -> &str {
    [".gz", ".zst", ".zstd", ".zip"]
        .iter()
        .find_map(|ext| name.strip_suffix(ext))
        .unwrap_or(name)
}

/// A valid table name made from a file name (`Orders 2024.csv` → `orders_2024`, and
/// `orders.csv.gz`, `orders.csv.zst` or `book.xlsx` → `orders` or `book`), if any.
pub(super) fn table_name_from(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?.to_lowercase();
    let file = strip_compression(&file);
    let stem = Path::new(file).file_stem()?.to_str()?;
    let mut name = String::new();
    for c in stem.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            name.push(c);
        } else if !name.is_empty() && !name.ends_with('_') {
            name.push('_');
        }
    }
    let name: String = name.chars().take(48).collect();
    let name = name.trim_end_matches('_').to_owned();
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase()) && !name.starts_with("intake");
    valid.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_come_from_the_file_name_without_its_extensions() {
        let name = |p: &str| table_name_from(Path::new(p));
        assert_eq!(name("data/Orders 2024.csv"), Some("orders_2024".into()));
        assert_eq!(name("orders.csv.gz"), Some("orders".into()));
        assert_eq!(name("Events.NDJSON.GZ"), Some("events".into()));
        assert_eq!(name("orders.csv.zst"), Some("orders".into()));
        assert_eq!(name("Q1 Book.xlsx"), Some("q1_book".into()));
        assert_eq!(name("people.tsv.zip"), Some("people".into()));
        assert_eq!(name("2024.csv"), None);
    }
}
