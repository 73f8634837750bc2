-- Pages of imports filtered by status walk this index, one status at a time.
CREATE INDEX intake_imports_by_status ON intake_imports (workspace_id, status, id);
