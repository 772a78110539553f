"""Call-detail records: what happened to each call, stored for reports.

- `records`: the plain dataclasses the call controller fills in (`CallRecord`, `LegRecord`).
- `store`: `CdrStore`, a non-blocking batched writer plus queries (SQLite or PostgreSQL).
- `schema` / `db` / `migrations/`: tables, engines and Alembic migrations (storage details).
- `reports`: a number's call log as a text table, CSV or JSON, in the number's time zone.
"""
