-- Intake metadata. User tables live beside these, named <workspace slug>__<table>.
CREATE TABLE intake_workspaces (
    id TEXT PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    next_import_number INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL
);

CREATE TABLE intake_api_keys (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES intake_workspaces (id),
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    prefix TEXT NOT NULL,
    hash BLOB NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at TEXT
);
CREATE INDEX intake_api_keys_workspace ON intake_api_keys (workspace_id, created_at);

CREATE TABLE intake_tables (
    workspace_id TEXT NOT NULL REFERENCES intake_workspaces (id),
    name TEXT NOT NULL,
    schema TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (workspace_id, name)
);

CREATE TABLE intake_imports (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES intake_workspaces (id),
    number INTEGER NOT NULL,
    status TEXT NOT NULL,
    step TEXT NOT NULL,
    source TEXT NOT NULL,
    mode TEXT NOT NULL,
    on_error TEXT NOT NULL,
    max_errors INTEGER,
    dry_run INTEGER NOT NULL,
    cleanup_records INTEGER NOT NULL,
    reference TEXT,
    reference_origin TEXT,
    metadata TEXT NOT NULL,
    note TEXT,
    platform TEXT,
    error TEXT,
    bytes_total INTEGER NOT NULL DEFAULT 0,
    bytes_read INTEGER NOT NULL DEFAULT 0,
    inputs INTEGER,
    processed INTEGER NOT NULL DEFAULT 0,
    created INTEGER NOT NULL DEFAULT 0,
    updated INTEGER NOT NULL DEFAULT 0,
    unchanged INTEGER NOT NULL DEFAULT 0,
    invalid INTEGER NOT NULL DEFAULT 0,
    destroyed INTEGER NOT NULL DEFAULT 0,
    warnings INTEGER NOT NULL DEFAULT 0,
    errors_stored INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_token INTEGER NOT NULL DEFAULT 0,
    lease_expires_at INTEGER,
    created_at TEXT NOT NULL,
    started_at TEXT,
    completed_at TEXT,
    cancelled_at TEXT,
    rolled_back_at TEXT,
    updated_at TEXT NOT NULL,
    UNIQUE (workspace_id, number)
);
CREATE INDEX intake_imports_by_id ON intake_imports (workspace_id, id);
CREATE INDEX intake_imports_by_created ON intake_imports (workspace_id, created_at, id);
CREATE INDEX intake_imports_by_updated ON intake_imports (workspace_id, updated_at, id);
CREATE INDEX intake_imports_by_completed ON intake_imports (workspace_id, completed_at, id);
CREATE INDEX intake_imports_runnable ON intake_imports (created_at)
    WHERE status IN ('queued', 'processing', 'rolling_back');

CREATE TABLE intake_import_tables (
    import_id TEXT NOT NULL REFERENCES intake_imports (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    table_name TEXT NOT NULL,
    status TEXT NOT NULL,
    format TEXT NOT NULL,
    options TEXT NOT NULL,
    blob_key TEXT,
    file_name TEXT,
    file_size INTEGER,
    header TEXT,
    bytes_total INTEGER NOT NULL DEFAULT 0,
    bytes_read INTEGER NOT NULL DEFAULT 0,
    checkpoint_offset INTEGER NOT NULL DEFAULT 0,
    checkpoint_line INTEGER NOT NULL DEFAULT 0,
    checkpoint_record INTEGER NOT NULL DEFAULT 0,
    inputs INTEGER,
    processed INTEGER NOT NULL DEFAULT 0,
    created INTEGER NOT NULL DEFAULT 0,
    updated INTEGER NOT NULL DEFAULT 0,
    unchanged INTEGER NOT NULL DEFAULT 0,
    invalid INTEGER NOT NULL DEFAULT 0,
    destroyed INTEGER NOT NULL DEFAULT 0,
    warnings INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    started_at TEXT,
    completed_at TEXT,
    PRIMARY KEY (import_id, position)
);
CREATE INDEX intake_import_tables_by_table ON intake_import_tables (table_name, import_id);

CREATE TABLE intake_row_errors (
    id INTEGER PRIMARY KEY,
    import_id TEXT NOT NULL REFERENCES intake_imports (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    line INTEGER NOT NULL,
    record INTEGER NOT NULL,
    column_name TEXT,
    code TEXT NOT NULL,
    message TEXT NOT NULL,
    row TEXT NOT NULL
);
CREATE INDEX intake_row_errors_by_import ON intake_row_errors (import_id, id);

CREATE TABLE intake_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id TEXT NOT NULL,
    import_id TEXT NOT NULL REFERENCES intake_imports (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX intake_events_by_import ON intake_events (import_id, id);

-- Previous versions of rows an import updated or destroyed, to undo it.
CREATE TABLE intake_undo (
    id INTEGER PRIMARY KEY,
    import_id TEXT NOT NULL REFERENCES intake_imports (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    op TEXT NOT NULL,
    row TEXT NOT NULL
);
CREATE INDEX intake_undo_by_import ON intake_undo (import_id, id);

CREATE TABLE intake_idempotency (
    workspace_id TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    import_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (workspace_id, key)
);
