"""HTTP API and pages (not built yet: see the issue tracker)."""
