"""The idempotent write path: every delivery stored raw, its jobs merged, in one transaction."""
