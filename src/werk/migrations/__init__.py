"""Alembic migrations of the relational store (SQLite or PostgreSQL)."""
