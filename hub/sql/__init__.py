"""A small SQL access layer for the API's own reads and the auth tables (PostgreSQL or SQLite)."""

from hub.sql.database import Database, Dialect, open_database

__all__ = ["Database", "Dialect", "open_database"]
