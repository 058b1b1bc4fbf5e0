"""Sources: one supervised, reconnecting websocket session per account (see ``session``).

``Sources`` (supervisor) is what the daemon starts; its ``statistics()`` is what metrics and
the status line read. Stream health (``health.StreamHealth``) is the sans-IO machine that
the sessions and ``alertd replay`` share (its outputs are in ``outputs``), with the stream
filter (``streams.keeps``). ``Recorder`` writes ``--record`` captures and ``read_capture``
reads them back.
"""

from alertd.sources.capture import CaptureError, CaptureRecord, Recorder, read_capture
from alertd.sources.health import StreamHealth
from alertd.sources.outputs import Emit, HealthStatistics, Output
from alertd.sources.session import AccountStatistics, Session
from alertd.sources.streams import CONNECTION, HealthPolicy, keeps
from alertd.sources.supervisor import Sources, SourcesStatistics

__all__ = [
    "CONNECTION",
    "AccountStatistics",
    "CaptureError",
    "CaptureRecord",
    "Emit",
    "HealthPolicy",
    "HealthStatistics",
    "Output",
    "Recorder",
    "Session",
    "Sources",
    "SourcesStatistics",
    "StreamHealth",
    "keeps",
    "read_capture",
]
