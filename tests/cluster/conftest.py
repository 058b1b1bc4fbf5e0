"""The integration tests' real processes, webhook receiver and sd_notify socket, for the
cluster's tests."""

from integration.conftest import notify, procs, receiver

__all__ = ["notify", "procs", "receiver"]
