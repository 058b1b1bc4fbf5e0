"""Daemon plumbing that the supervisor (``alertd run``) wires together: sd_notify and the
systemd watchdog, logging for journald with secrets masked, Prometheus metrics, signals, and
the human-readable status line."""
