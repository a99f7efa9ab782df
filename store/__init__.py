"""longrun.store: the embedded SQLite store (tables, engine, the append-only event log, read queries).

Imports neither longrun.scheduler nor longrun.app, and nothing here imports Textual.
"""
