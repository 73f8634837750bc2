-- Intake metadata, in the public schema beside each workspace's own schema (named by its
-- slug) that holds its tables. JSON documents use `json`, not `jsonb`: they are read back
-- exactly as written (key order, number spelling), as the SQLite backend reads them.
CREATE TABLE intake_workspaces (
    id uuid PRIMARY KEY,
    slug text NOT NULL UNIQUE,
    name text NOT NULL,
    next_import_number bigint NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL
);

CREATE TABLE intake_api_keys (
    id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES intake_workspaces (id),
    name text NOT NULL,
    role text NOT NULL,
    prefix text NOT NULL,
    hash bytea NOT NULL UNIQUE,
    created_at timestamptz NOT NULL,
    last_used_at timestamptz,
    revoked_at timestamptz
);
CREATE INDEX intake_api_keys_workspace ON intake_api_keys (workspace_id, created_at);

CREATE TABLE intake_tables (
    workspace_id uuid NOT NULL REFERENCES intake_workspaces (id),
    name text NOT NULL,
    schema json NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, name)
);

CREATE TABLE intake_imports (
    id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES intake_workspaces (id),
    number bigint NOT NULL,
    status text NOT NULL,
    step text NOT NULL,
    source text NOT NULL,
    mode text NOT NULL,
    on_error text NOT NULL,
    max_errors bigint,
    dry_run boolean NOT NULL,
    cleanup_records boolean NOT NULL,
    reference text,
    reference_origin text,
    metadata json NOT NULL,
    note text,
    platform text,
    error text,
    bytes_total bigint NOT NULL DEFAULT 0,
    bytes_read bigint NOT NULL DEFAULT 0,
    inputs bigint,
    processed bigint NOT NULL DEFAULT 0,
    created bigint NOT NULL DEFAULT 0,
    updated bigint NOT NULL DEFAULT 0,
    unchanged bigint NOT NULL DEFAULT 0,
    invalid bigint NOT NULL DEFAULT 0,
    destroyed bigint NOT NULL DEFAULT 0,
    warnings bigint NOT NULL DEFAULT 0,
    errors_stored bigint NOT NULL DEFAULT 0,
    cancel_requested boolean NOT NULL DEFAULT false,
    lease_owner text,
    lease_token bigint NOT NULL DEFAULT 0,
    -- On the database's clock, so that processes on machines with skewed clocks agree.
    lease_expires_at timestamptz,
    created_at timestamptz NOT NULL,
    started_at timestamptz,
    completed_at timestamptz,
    cancelled_at timestamptz,
    rolled_back_at timestamptz,
    updated_at timestamptz NOT NULL,
    -- Until when an import can be rolled back (its undo journal is kept that long).
    rollback_until timestamptz,
    UNIQUE (workspace_id, number)
);
CREATE INDEX intake_imports_by_id ON intake_imports (workspace_id, id);
CREATE INDEX intake_imports_by_created ON intake_imports (workspace_id, created_at, id);
CREATE INDEX intake_imports_by_updated ON intake_imports (workspace_id, updated_at, id);
CREATE INDEX intake_imports_by_completed ON intake_imports (workspace_id, completed_at, id);
CREATE INDEX intake_imports_runnable ON intake_imports (created_at)
    WHERE status IN ('queued', 'processing', 'rolling_back');
CREATE INDEX intake_imports_prunable ON intake_imports (rollback_until)
    WHERE rollback_until IS NOT NULL;

CREATE TABLE intake_import_tables (
    import_id uuid NOT NULL REFERENCES intake_imports (id) ON DELETE CASCADE,
    position bigint NOT NULL,
    table_name text NOT NULL,
    status text NOT NULL,
    format text NOT NULL,
    options json NOT NULL,
    blob_key text,
    file_name text,
    file_size bigint,
    header json,
    bytes_total bigint NOT NULL DEFAULT 0,
    bytes_read bigint NOT NULL DEFAULT 0,
    checkpoint_offset bigint NOT NULL DEFAULT 0,
    checkpoint_line bigint NOT NULL DEFAULT 0,
    checkpoint_record bigint NOT NULL DEFAULT 0,
    inputs bigint,
    processed bigint NOT NULL DEFAULT 0,
    created bigint NOT NULL DEFAULT 0,
    updated bigint NOT NULL DEFAULT 0,
    unchanged bigint NOT NULL DEFAULT 0,
    invalid bigint NOT NULL DEFAULT 0,
    destroyed bigint NOT NULL DEFAULT 0,
    warnings bigint NOT NULL DEFAULT 0,
    error text,
    started_at timestamptz,
    completed_at timestamptz,
    PRIMARY KEY (import_id, position)
);
CREATE INDEX intake_import_tables_by_table ON intake_import_tables (table_name, import_id);

CREATE TABLE intake_row_errors (
    id bigserial PRIMARY KEY,
    import_id uuid NOT NULL REFERENCES intake_imports (id) ON DELETE CASCADE,
    position bigint NOT NULL,
    line bigint NOT NULL,
    record bigint NOT NULL,
    column_name text,
    code text NOT NULL,
    message text NOT NULL,
    row json NOT NULL
);
CREATE INDEX intake_row_errors_by_import ON intake_row_errors (import_id, id);

-- Readers follow events by id: every transaction that appends events first takes its
-- workspace's advisory lock, so that ids become visible in id order.
CREATE TABLE intake_events (
    id bigserial PRIMARY KEY,
    workspace_id uuid NOT NULL,
    import_id uuid NOT NULL REFERENCES intake_imports (id) ON DELETE CASCADE,
    kind text NOT NULL,
    data json NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX intake_events_by_import ON intake_events (import_id, id);
CREATE INDEX intake_events_by_workspace ON intake_events (workspace_id, id);

-- Previous versions of rows an import updated or destroyed, to undo it: each row as the JSON
-- object of its table's row type (row_to_json), read back with json_populate_record.
CREATE TABLE intake_undo (
    id bigserial PRIMARY KEY,
    import_id uuid NOT NULL REFERENCES intake_imports (id) ON DELETE CASCADE,
    position bigint NOT NULL,
    op text NOT NULL,
    row json NOT NULL
);
CREATE INDEX intake_undo_by_import ON intake_undo (import_id, position, id);

CREATE TABLE intake_idempotency (
    workspace_id uuid NOT NULL,
    key text NOT NULL,
    fingerprint text NOT NULL,
    import_id uuid NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, key)
);

-- Webhooks and their deliveries. A delivery is created in the same transaction as the event
-- it announces, so none is lost across a restart.
CREATE TABLE intake_webhooks (
    id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES intake_workspaces (id),
    url text NOT NULL,
    events text[] NOT NULL,
    secret text NOT NULL,
    description text,
    created_at timestamptz NOT NULL
);
CREATE INDEX intake_webhooks_by_workspace ON intake_webhooks (workspace_id, created_at);

CREATE TABLE intake_webhook_deliveries (
    id bigserial PRIMARY KEY,
    webhook_id uuid NOT NULL REFERENCES intake_webhooks (id) ON DELETE CASCADE,
    workspace_id uuid NOT NULL,
    event_id bigint NOT NULL,
    event_type text NOT NULL,
    import_id uuid NOT NULL,
    status text NOT NULL,
    attempts bigint NOT NULL DEFAULT 0,
    last_status_code bigint,
    last_error text,
    -- Unix milliseconds, as the engine schedules retries.
    next_attempt_at bigint NOT NULL,
    created_at timestamptz NOT NULL,
    delivered_at timestamptz
);
CREATE INDEX intake_webhook_deliveries_due ON intake_webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX intake_webhook_deliveries_by_webhook ON intake_webhook_deliveries (webhook_id, id);

-- The imports running in a workspace, counted at every claim.
CREATE INDEX intake_imports_live ON intake_imports (workspace_id)
    WHERE status IN ('processing', 'rolling_back');
