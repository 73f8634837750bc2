-- A key may carry an expiry: past it, it authenticates nothing.
ALTER TABLE intake_api_keys ADD COLUMN expires_at timestamptz;
