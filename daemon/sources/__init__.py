"""Sources: where object announcements come from (spool, manifest, SQS, S3 listing, Redis Streams)."""
