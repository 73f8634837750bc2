-- Webhooks and their deliveries. A delivery is created in the same transaction as the event
-- it announces, so none is lost across a restart.
CREATE TABLE intake_webhooks (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES intake_workspaces (id),
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    secret TEXT NOT NULL,
    description TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX intake_webhooks_by_workspace ON intake_webhooks (workspace_id, created_at);

CREATE TABLE intake_webhook_deliveries (
    id INTEGER PRIMARY KEY,
    webhook_id TEXT NOT NULL REFERENCES intake_webhooks (id) ON DELETE CASCADE,
    workspace_id TEXT NOT NULL,
    event_id INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    import_id TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_status_code INTEGER,
    last_error TEXT,
    next_attempt_at INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    delivered_at TEXT
);
CREATE INDEX intake_webhook_deliveries_due ON intake_webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX intake_webhook_deliveries_by_webhook ON intake_webhook_deliveries (webhook_id, id);
CREATE INDEX intake_events_by_workspace ON intake_events (workspace_id, id);
