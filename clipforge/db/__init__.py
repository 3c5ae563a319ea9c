"""Postgres access: connection pool, migrations and repository functions."""
