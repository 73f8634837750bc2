-- A key may be limited to importing into some tables: a JSON list of their names (NULL: any).
ALTER TABLE intake_api_keys ADD COLUMN tables TEXT;
