//! The columns of Intake's own tables as both backends select them, in the order their row
//! readers expect.

/// An import's columns (`intake_imports`).
pub(crate) const IMPORT_COLUMNS: &str = "id, workspace_id, number, status, step, source, mode, on_error, \
    max_errors, dry_run, cleanup_records, reference, reference_origin, metadata, note, platform, \
    error, bytes_total, bytes_read, inputs, processed, created, updated, unchanged, invalid, \
    destroyed, warnings, cancel_requested, created_at, started_at, completed_at, cancelled_at, \
    rolled_back_at, updated_at, rollback_until, errors_stored";

/// An import table's columns (`intake_import_tables`).
pub(crate) const TABLE_COLUMNS: &str = "position, table_name, status, format, options, blob_key, file_name, \
    file_size, header, bytes_total, bytes_read, checkpoint_offset, checkpoint_line, \
    checkpoint_record, inputs, processed, created, updated, unchanged, invalid, destroyed, \
    warnings, error, started_at, completed_at";

/// A key's columns (`intake_api_keys`).
pub(crate) const KEY_COLUMNS: &str = "id, workspace_id, name, role, prefix, created_at, last_used_at, revoked_at, expires_at, tables";

/// A webhook's columns (`intake_webhooks`).
pub(crate) const WEBHOOK_COLUMNS: &str = "id, url, events, secret, description, created_at";

/// The column holding the number of the import that last wrote each row.
pub const IMPORT_COLUMN: &str = "_intake_import";

/// The column of an upsert's journal saying why a row is in it: `updated`, `claimed` (kept
/// by a cleanup, same values) or `destroyed` (deleted by a cleanup).
pub const JOURNAL_OP_COLUMN: &str = "_intake_op";
