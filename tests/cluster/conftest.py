"""The integration tests' real processes and webhook receiver, for the cluster's tests."""

from integration.conftest import procs, receiver

__all__ = ["procs", "receiver"]
