"""Conformance: what every store guarantees, through the ``Store`` protocol only, run on
SQLite and PostgreSQL alike (the ``store``/``database_url`` fixtures), state machine included."""
