"""Persistence: SQLAlchemy 2 tables, the database handle and Alembic migrations.

SQLite in the data directory by default; PostgreSQL when DUIYI_DATABASE_URL says so. Nothing
outside `service/` touches the database.
"""
