"""The revisions, one a schema version; Alembic reads them from this folder."""
