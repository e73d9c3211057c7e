"""Operations: what systemd and operators see (health, metrics, sd_notify, watchdog, status client)."""
