-- Until when an import can be rolled back (its undo journal is kept that long).
ALTER TABLE intake_imports ADD COLUMN rollback_until TEXT;
CREATE INDEX intake_imports_prunable ON intake_imports (rollback_until)
    WHERE rollback_until IS NOT NULL;
