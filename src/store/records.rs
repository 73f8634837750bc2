//! The types that cross the store's interface.

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::model::{
    Counts, ImportStatus, Mode, OnError, Role, RowError, RowErrorCode, Source, Step, TableSchema,
    Value, row_error::SourceRecord,
};

/// A tenant.
#[derive(Debug, Clone, Serialize)]
pub struct Workspace {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A key about to be stored: only its hash and a short prefix for people to recognise it.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    pub prefix: String,
    pub hash: [u8; 32],
    /// When the key stops working, if it does.
    pub expires_at: Option<OffsetDateTime>,
    /// The only tables the key may import into (None: any).
    pub tables: Option<Vec<String>>,
}

impl NewKey {
    /// The key as stored in a workspace at `created_at`, never used yet.
    pub fn record(&self, workspace_id: Uuid, created_at: OffsetDateTime) -> KeyRecord {
        KeyRecord {
            id: self.id,
            workspace_id,
            name: self.name.clone(),
            role: self.role,
            prefix: self.prefix.clone(),
            created_at,
            last_used_at: None,
            revoked_at: None,
            expires_at: self.expires_at,
            tables: self.tables.clone(),
        }
    }
}

/// A stored key (never the secret). The API shows it through its own view.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub name: String,
    pub role: Role,
    pub prefix: String,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    /// Past this instant the key authenticates nothing (None: it does not expire).
    pub expires_at: Option<OffsetDateTime>,
    /// The only tables the key may import into (None: any).
    pub tables: Option<Vec<String>>,
}

/// A managed table: its schema and where it lives in the database.
#[derive(Debug, Clone)]
pub struct TableRecord {
    pub schema: TableSchema,
    /// The table's name inside the database.
    pub physical_name: String,
    pub created_at: OffsetDateTime,
    /// Rows currently in the table (only filled by `get_table`).
    pub row_count: Option<u64>,
}

/// A page of a table's rows, as JSON objects keyed by column.
#[derive(Debug, Clone)]
pub struct RecordsPage {
    pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
    pub next: Option<i64>,
}

/// One input of a new import: a staged source bound for one table.
#[derive(Debug, Clone)]
pub struct NewImportInput {
    pub table: String,
    pub blob_key: Option<String>,
    pub format: String,
    /// How to read the source (delimiter, mapping, null values, ...), as JSON.
    pub options: serde_json::Value,
    pub file_name: Option<String>,
    pub file_size: Option<u64>,
}

/// An import about to be created.
#[derive(Debug, Clone)]
pub struct NewImport {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub status: ImportStatus,
    pub source: Source,
    pub mode: Mode,
    pub on_error: OnError,
    pub max_errors: Option<u64>,
    pub dry_run: bool,
    pub cleanup_records: bool,
    pub reference: Option<String>,
    pub reference_origin: Option<String>,
    pub metadata: serde_json::Value,
    pub note: Option<String>,
    pub platform: Option<String>,
    pub error: Option<String>,
    pub inputs: Vec<NewImportInput>,
    pub idempotency: Option<NewIdempotency>,
}

/// An idempotency key to store with the import it created.
#[derive(Debug, Clone)]
pub struct NewIdempotency {
    pub key: String,
    pub fingerprint: String,
}

/// What an idempotency key was first used for.
#[derive(Debug, Clone)]
pub struct IdempotencyRecord {
    pub fingerprint: String,
    pub import_id: Uuid,
}

/// The result of `create_import`.
#[derive(Debug, Clone)]
pub enum CreateOutcome {
    Created(Box<ImportRecord>),
    /// The idempotency key was already used; this is what it was used for.
    Replayed(IdempotencyRecord),
}

/// Where a worker is in one source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    pub byte_offset: u64,
    pub line: u64,
    pub record: u64,
}

/// One table of an import, as stored.
#[derive(Debug, Clone)]
pub struct ImportTableRecord {
    pub position: u32,
    pub table: String,
    pub status: ImportStatus,
    pub format: String,
    pub options: serde_json::Value,
    pub blob_key: Option<String>,
    pub file_name: Option<String>,
    pub file_size: Option<u64>,
    pub counts: Counts,
    pub bytes_total: u64,
    pub bytes_read: u64,
    pub checkpoint: Position,
    /// The source's header, once read (needed to resume delimited sources mid-file).
    pub header: Option<Vec<String>>,
    pub error: Option<String>,
    pub started_at: Option<OffsetDateTime>,
    pub completed_at: Option<OffsetDateTime>,
}

/// An import, as stored.
#[derive(Debug, Clone)]
pub struct ImportRecord {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub number: i64,
    pub status: ImportStatus,
    pub step: Step,
    pub source: Source,
    pub mode: Mode,
    pub on_error: OnError,
    pub max_errors: Option<u64>,
    pub dry_run: bool,
    pub cleanup_records: bool,
    pub reference: Option<String>,
    pub reference_origin: Option<String>,
    pub metadata: serde_json::Value,
    pub note: Option<String>,
    pub platform: Option<String>,
    pub error: Option<String>,
    pub counts: Counts,
    pub bytes_total: u64,
    pub bytes_read: u64,
    pub cancel_requested: bool,
    pub created_at: OffsetDateTime,
    pub started_at: Option<OffsetDateTime>,
    pub completed_at: Option<OffsetDateTime>,
    pub cancelled_at: Option<OffsetDateTime>,
    pub rolled_back_at: Option<OffsetDateTime>,
    pub updated_at: OffsetDateTime,
    /// Until when the import can be rolled back; None once its undo journal is pruned, and
    /// for imports that wrote nothing.
    pub rollback_until: Option<OffsetDateTime>,
    /// Row errors stored (downloadable); fewer than `counts.invalid` once past
    /// `--max-stored-errors`, or once retention pruned them.
    pub errors_stored: u64,
    pub tables: Vec<ImportTableRecord>,
}

impl ImportRecord {
    /// The tables whose rows carrying its number are its own, each once: none for a dry run,
    /// which wrote nothing (rows carrying its number belong to another import).
    pub fn tables_written(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        if self.dry_run {
            return out;
        }
        for t in &self.tables {
            if !out.contains(&t.table.as_str()) {
                out.push(&t.table);
            }
        }
        out
    }

    /// The keys of its stored sources.
    pub fn blob_keys(&self) -> Vec<String> {
        self.tables
            .iter()
            .filter_map(|t| t.blob_key.clone())
            .collect()
    }

    /// Checks that `sizes` gives one size per input, as starting it needs.
    pub fn check_sizes(&self, sizes: &[u64]) -> super::StoreResult<()> {
        if sizes.len() == self.tables.len() {
            return Ok(());
        }
        Err(super::StoreError::Invalid(format!(
            "the import has {} inputs, not {}",
            self.tables.len(),
            sizes.len()
        )))
    }

    /// Its reference, reference origin and metadata once `labels` are applied.
    pub fn relabelled(
        &self,
        labels: &super::ImportLabels,
    ) -> (Option<String>, Option<String>, serde_json::Value) {
        (
            labels.reference.clone().unwrap_or(self.reference.clone()),
            labels
                .reference_origin
                .clone()
                .unwrap_or(self.reference_origin.clone()),
            labels.metadata.clone().unwrap_or(self.metadata.clone()),
        )
    }

    /// What its life-cycle decisions read.
    pub fn lifecycle(&self) -> crate::model::Lifecycle {
        crate::model::Lifecycle {
            status: self.status,
            dry_run: self.dry_run,
            rollback_until: self.rollback_until,
        }
    }

    /// Whether some of its rejected rows were counted but not stored: the download of its
    /// rejected rows is then not all of them.
    pub fn errors_truncated(&self) -> bool {
        self.errors_stored < self.counts.invalid
    }
}

/// Sort orders of the import list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportSort {
    Id,
    CreatedAt,
    UpdatedAt,
    CompletedAt,
}

impl ImportSort {
    /// The column of `intake_imports` it sorts by.
    pub fn column(self) -> &'static str {
        match self {
            ImportSort::Id => "id",
            ImportSort::CreatedAt => "created_at",
            ImportSort::UpdatedAt => "updated_at",
            ImportSort::CompletedAt => "completed_at",
        }
    }
}

/// Filters, order and page of the import list.
#[derive(Debug, Clone, Default)]
pub struct ImportQuery {
    /// Statuses to keep (none: every status).
    pub statuses: Vec<ImportStatus>,
    pub table: Option<String>,
    pub source: Option<Source>,
    pub reference: Option<String>,
    pub created_after: Option<OffsetDateTime>,
    pub created_before: Option<OffsetDateTime>,
    pub updated_after: Option<OffsetDateTime>,
    pub updated_before: Option<OffsetDateTime>,
    pub sort: Option<ImportSort>,
    pub descending: bool,
    /// Resume after this (sort value, id) pair.
    pub after: Option<(Option<String>, Uuid)>,
    pub limit: u32,
}

impl ImportQuery {
    /// The statuses to keep, each once, in the order given.
    pub fn distinct_statuses(&self) -> Vec<ImportStatus> {
        let mut out: Vec<ImportStatus> = Vec::with_capacity(self.statuses.len());
        for s in &self.statuses {
            if !out.contains(s) {
                out.push(*s);
            }
        }
        out
    }

    /// The time filters that are set, as (column, comparison, bound).
    pub fn time_bounds(
        &self,
    ) -> impl Iterator<Item = (&'static str, &'static str, OffsetDateTime)> {
        [
            ("created_at", ">", self.created_after),
            ("created_at", "<", self.created_before),
            ("updated_at", ">", self.updated_after),
            ("updated_at", "<", self.updated_before),
        ]
        .into_iter()
        .filter_map(|(col, op, value)| value.map(|v| (col, op, v)))
    }

    /// The comparison that resumes after a cursor, and the SQL order direction.
    pub fn direction(&self) -> (&'static str, &'static str) {
        if self.descending {
            ("<", "DESC")
        } else {
            (">", "ASC")
        }
    }
}

/// A page of imports; `has_more` tells whether another page follows.
#[derive(Debug, Clone)]
pub struct ImportPage {
    pub imports: Vec<ImportRecord>,
    pub has_more: bool,
}

/// A stored row error.
#[derive(Debug, Clone)]
pub struct StoredRowError {
    pub id: i64,
    pub table: String,
    pub error: RowError,
}

/// An import's stored row errors of one table, column and code, counted.
#[derive(Debug, Clone)]
pub struct ErrorGroup {
    pub table: String,
    /// None for errors about the whole record (a malformed record, a taken key).
    pub column: Option<String>,
    pub code: RowErrorCode,
    pub count: u64,
    /// The line of the group's first error (in the order errors are listed).
    pub first_line: u64,
    /// The message of that first error.
    pub example: String,
}

/// A stored lifecycle event.
#[derive(Debug, Clone)]
pub struct EventRecord {
    pub id: i64,
    pub import_id: Uuid,
    pub kind: String,
    pub data: serde_json::Value,
    pub created_at: OffsetDateTime,
}

/// A worker's claim on an import; `token` fences writes of earlier holders.
#[derive(Debug, Clone)]
pub struct Claim {
    pub import: ImportRecord,
    pub worker: String,
    pub token: i64,
    /// How long each renewal holds the lease, in milliseconds.
    pub lease_ms: i64,
}

/// The imports waiting for a worker.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueStats {
    /// Imports queued and not claimed yet.
    pub queued: u64,
    /// When the oldest of them was created.
    pub oldest_created_at: Option<OffsetDateTime>,
}

/// How busy the database connections of this process are.
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolStats {
    /// Connections open now.
    pub open: u64,
    /// Of those, the ones a request or worker is using.
    pub in_use: u64,
    /// The most this process opens.
    pub max: u64,
}

/// What a lease renewal learned.
#[derive(Debug, Clone, Copy)]
pub struct LeaseState {
    pub cancel_requested: bool,
}

/// What a worker records when it starts or resumes a table.
#[derive(Debug, Clone)]
pub struct TableStart {
    pub header: Option<Vec<String>>,
    pub bytes_total: u64,
    /// Warnings found before the first row (unknown columns), counted once.
    pub warnings: Vec<String>,
}

/// How a table ends.
#[derive(Debug, Clone)]
pub struct TableEnd {
    pub status: ImportStatus,
    pub inputs: Option<u64>,
    pub destroyed: u64,
    pub error: Option<String>,
}

/// How an import ends.
#[derive(Debug, Clone)]
pub struct ImportEnd {
    pub status: ImportStatus,
    pub error: Option<String>,
    /// Until when it can be rolled back (its undo journal is kept that long).
    pub rollback_until: Option<OffsetDateTime>,
}

/// What a writer needs to know to load one table.
#[derive(Debug, Clone)]
pub struct WritePlan {
    pub position: u32,
    pub schema: TableSchema,
    pub mode: Mode,
    pub dry_run: bool,
    /// Stored row errors are capped per import at this count (all are counted).
    pub max_stored_errors: u64,
}

/// One row ready to be written, with where it came from.
#[derive(Debug, Clone)]
pub struct TypedRow {
    pub line: u64,
    pub record: u64,
    /// One value per table column, in schema order.
    pub values: Vec<Value>,
    /// The original record, kept to report a database-level rejection (duplicate key).
    pub original: SourceRecord,
}

/// A batch: valid rows, the rows rejected before writing, and where the source stands after it.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub rows: Vec<TypedRow>,
    pub errors: Vec<RowError>,
    pub checkpoint: Position,
    pub bytes_read: u64,
    /// Warnings found while reading this batch (unknown columns), each counted once.
    pub warnings: Vec<String>,
    /// The source fields those warnings name (kept with them, so that a resumed import does
    /// not report them again).
    pub warned_fields: Vec<String>,
    /// Rejected records counted (as processed and invalid) but not stored, beyond the cap.
    pub unstored_invalid: u64,
    /// Valid records a validation pass checked without writing them (counted as processed,
    /// so that a refused atomic import says how many rows it read).
    pub checked_valid: u64,
    /// Keys of rejected records: with `cleanup_records`, the table's rows of these keys are
    /// kept (a typo in one cell must not delete the row).
    pub kept_keys: Vec<Vec<Value>>,
}

impl Batch {
    /// Records rejected before writing: those stored as errors and those only counted.
    pub fn invalid_before_writing(&self) -> u64 {
        self.errors.len() as u64 + self.unstored_invalid
    }

    /// Records the batch accounts for, valid or not.
    pub fn processed(&self) -> u64 {
        self.rows.len() as u64 + self.checked_valid + self.invalid_before_writing()
    }
}

/// What committing a batch did.
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchOutcome {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Rows rejected: before writing plus by the database.
    pub invalid: u64,
    pub cancel_requested: bool,
}

/// A webhook about to be registered.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub id: Uuid,
    pub url: String,
    /// Event types it receives.
    pub events: Vec<String>,
    /// The signing secret.
    pub secret: String,
    pub description: Option<String>,
}

/// A registered webhook.
#[derive(Debug, Clone)]
pub struct WebhookRecord {
    pub id: Uuid,
    pub url: String,
    pub events: Vec<String>,
    pub secret: String,
    pub description: Option<String>,
    pub created_at: OffsetDateTime,
}

/// One delivery of an event to a webhook, as recorded.
#[derive(Debug, Clone)]
pub struct DeliveryRecord {
    pub id: i64,
    pub event_id: i64,
    pub event_type: String,
    pub import_id: Uuid,
    /// `pending`, `succeeded` or `failed` (gave up).
    pub status: String,
    pub attempts: u32,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    /// When the next attempt is due (pending deliveries), Unix milliseconds.
    pub next_attempt_at: i64,
    pub created_at: OffsetDateTime,
    pub delivered_at: Option<OffsetDateTime>,
}

/// A delivery claimed for sending, with what is needed to send it.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub id: i64,
    pub workspace_id: Uuid,
    pub url: String,
    pub secret: String,
    pub event_id: i64,
    pub event_type: String,
    pub event_created_at: OffsetDateTime,
    pub import_id: Uuid,
    pub attempts: u32,
}

/// What one attempt of a delivery gave.
#[derive(Debug, Clone)]
pub struct DeliveryOutcome {
    pub status_code: Option<u16>,
    pub error: Option<String>,
    /// When to try again (None: delivered, or given up).
    pub retry_at: Option<i64>,
    pub succeeded: bool,
}

/// A key's scope as stored: a JSON list of table names, or NULL for any table.
pub fn scope_text(tables: &Option<Vec<String>>) -> Option<String> {
    tables
        .as_ref()
        .map(|t| serde_json::to_string(t).unwrap_or_else(|_| "[]".into()))
}

/// A stored scope read back; unreadable text scopes the key to no table (never to all).
pub fn scope_from_text(text: Option<String>) -> Option<Vec<String>> {
    text.map(|t| serde_json::from_str(&t).unwrap_or_default())
}
