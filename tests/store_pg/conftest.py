"""The integration tests' real processes and webhook receiver, for the replica tests here."""

from integration.conftest import procs, receiver

__all__ = ["procs", "receiver"]
