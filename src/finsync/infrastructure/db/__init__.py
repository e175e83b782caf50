"""SQL persistence: SQLite (embedded default) and PostgreSQL through one code path."""
