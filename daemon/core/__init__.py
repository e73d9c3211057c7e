"""The bottom room: what every other room uses — the Job data, the configuration and the logging."""
