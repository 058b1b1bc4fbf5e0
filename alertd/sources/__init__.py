"""Sources: one supervised, reconnecting websocket session per account (see ``session``).

``Sources`` (supervisor) is what the daemon starts; ``Recorder`` writes ``--record`` captures
and ``read_capture`` reads them back for replay.
"""

from alertd.sources.capture import CaptureError, CaptureRecord, Recorder, read_capture
from alertd.sources.session import CONNECTION, Session, SourceStats
from alertd.sources.supervisor import Sources

__all__ = [
    "CONNECTION",
    "CaptureError",
    "CaptureRecord",
    "Recorder",
    "Session",
    "SourceStats",
    "Sources",
    "read_capture",
]
