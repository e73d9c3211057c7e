"""The ledger: what was accepted, dead-lettered and begun, in SQLite or PostgreSQL; and requeue."""
