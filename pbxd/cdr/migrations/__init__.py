"""Alembic migrations for the CDR tables (a package so that env.py ships with pbxd)."""
