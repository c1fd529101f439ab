"""Alembic migrations of the store (run with `hotline db upgrade`)."""
