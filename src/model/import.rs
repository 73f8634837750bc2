//! Imports: status lifecycle, steps, modes, error policies, sources and counts.

use serde::{Deserialize, Serialize};

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name { $($(#[$vm])* #[serde(rename = $s)] $var),+ }

        // Written out (not derived): the derive cannot read the macro's `rename` values.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($s),+]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl $name {
            /// Every value, in documentation order.
            pub const ALL: &'static [$name] = &[$($name::$var),+];

            /// The name as stored and shown.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$var => $s),+ }
            }

            /// Parses a stored or requested name.
            pub fn parse(s: &str) -> Option<$name> {
                match s { $($s => Some($name::$var),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum! {
    /// Where an import is in its life (DESIGN section 3).
    ImportStatus {
        /// Created, waiting for its file.
        New = "new",
        Queued = "queued",
        Processing = "processing",
        Complete = "complete",
        /// Finished, but some rows were invalid and skipped.
        PartiallyComplete = "partially_complete",
        Failed = "failed",
        Cancelled = "cancelled",
        RollingBack = "rolling_back",
        RolledBack = "rolled_back",
        /// The source cannot be read as any supported format.
        Unsupported = "unsupported",
    }
}

impl ImportStatus {
    /// Whether the import has ended (it changes again only by a rollback).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ImportStatus::Complete
                | ImportStatus::PartiallyComplete
                | ImportStatus::Failed
                | ImportStatus::Cancelled
                | ImportStatus::RolledBack
                | ImportStatus::Unsupported
        )
    }

    /// The lifecycle event (and webhook event type) announcing that an import reached this
    /// status.
    pub fn event_type(self) -> &'static str {
        match self {
            ImportStatus::New => "import.created",
            ImportStatus::Queued => "import.queued",
            ImportStatus::Processing => "import.started",
            ImportStatus::Complete => "import.completed",
            ImportStatus::PartiallyComplete => "import.partially_completed",
            ImportStatus::Failed => "import.failed",
            ImportStatus::Cancelled => "import.cancelled",
            ImportStatus::RollingBack => "import.rolling_back",
            ImportStatus::RolledBack => "import.rolled_back",
            ImportStatus::Unsupported => "import.unsupported",
        }
    }

    /// Whether a cancel request can still stop the import.
    pub fn is_cancellable(self) -> bool {
        matches!(
            self,
            ImportStatus::New | ImportStatus::Queued | ImportStatus::Processing
        )
    }
}

string_enum! {
    /// What the engine is doing for an import right now.
    Step {
        /// Waiting for its file (status `new`).
        Waiting = "waiting",
        /// Fetching its source from a URL (status `new`).
        Downloading = "downloading",
        /// Waiting for a worker.
        Queued = "queued",
        /// Reading the whole source to infer the table it creates (`create_table=true`).
        Inferring = "inferring",
        /// Checking every row before writing anything (`on_error=atomic`).
        Validating = "validating",
        /// Reading, validating and writing rows.
        Writing = "writing",
        /// Deleting rows absent from the source (`cleanup_records`) or swapping in a replaced table.
        CleaningUp = "cleaning_up",
        /// Undoing what an aborted import wrote.
        Reverting = "reverting",
        /// Undoing a finished import on request.
        RollingBack = "rolling_back",
        /// Ended.
        Done = "done",
    }
}

string_enum! {
    /// How rows meet the rows already in the table.
    Mode {
        /// Every row is new; a key already present is a row error.
        Insert = "insert",
        /// Rows are matched by the table's key: created, updated, or unchanged when identical.
        Upsert = "upsert",
        /// The table ends holding exactly the source's valid rows, swapped in atomically.
        Replace = "replace",
    }
}

string_enum! {
    /// What invalid rows do to the import.
    OnError {
        /// Invalid rows are recorded and skipped.
        Skip = "skip",
        /// The import stops after `max_errors` invalid rows and undoes what it wrote.
        Abort = "abort",
        /// Nothing is written unless every row is valid.
        Atomic = "atomic",
    }
}

impl OnError {
    /// The invalid rows an import with this policy tolerates while it writes; one more stops
    /// it. None: no limit (an atomic import checks every row before writing).
    pub fn error_limit(self, max_errors: Option<u64>) -> Option<u64> {
        match self {
            OnError::Abort => Some(max_errors.unwrap_or(0)),
            OnError::Skip => max_errors,
            OnError::Atomic => None,
        }
    }
}

string_enum! {
    /// Where an import's rows came from.
    Source {
        Csv = "csv",
        Tsv = "tsv",
        Ndjson = "ndjson",
        Json = "json",
        /// A sheet of an Excel workbook (Office Open XML).
        Xlsx = "xlsx",
        /// A sheet of an Excel binary workbook.
        Xlsb = "xlsb",
        /// A sheet of an Excel 97-2003 workbook.
        Xls = "xls",
        /// A sheet of an OpenDocument spreadsheet.
        Ods = "ods",
        /// Records sent inline in `POST /v1/imports`.
        Inline = "inline",
        /// Records sent to `POST /v1/tables/{table}/records`.
        Api = "api",
    }
}

/// The row counts of an import or of one of its tables.
/// Once the import ends, `processed = created + updated + unchanged + invalid`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Counts {
    /// Rows in the source; null until known.
    pub inputs: Option<u64>,
    pub processed: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub invalid: u64,
    pub destroyed: u64,
    pub warnings: u64,
}

impl Counts {
    /// Adds another set of counts (for summing per-table counts into the import's).
    pub fn add(&mut self, other: &Counts) {
        self.inputs = match (self.inputs, other.inputs) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
        self.processed += other.processed;
        self.created += other.created;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.invalid += other.invalid;
        self.destroyed += other.destroyed;
        self.warnings += other.warnings;
    }
}
