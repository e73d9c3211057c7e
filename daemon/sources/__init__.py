"""Sources: where object announcements come from."""
