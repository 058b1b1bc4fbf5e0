"""The accounts' Prometheus series, built at scrape time from the accounts' snapshots.

A custom collector rather than labelled counters kept up to date: with 5,000 accounts a loop
copying every account's counters into prometheus-client each second was 13 % of an idle
daemon's CPU, and the 25,000 labelled children it kept cost memory between scrapes. A scrape
(on the metrics server's thread) asks the trio thread for the snapshots, so they are read
where the sessions write them, and waits at most ``SNAPSHOT_TIMEOUT``: while the event loop is
stuck, which is when an operator looks, the scrape answers with the last snapshot taken.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import attrs
import trio
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from alertd import clock

if TYPE_CHECKING:
    from alertd.sources.outputs import HealthStatistics

# How long a scrape waits for the trio thread to snapshot the accounts before it shows the
# last snapshot (a stuck loop must not make the endpoint hang).
SNAPSHOT_TIMEOUT = 2.0

# Every started account's stream health snapshot, by name; called on the trio thread.
AccountsSource = Callable[[], "Mapping[str, HealthStatistics]"]


@attrs.define(eq=False)
class AccountsCollector(Collector):
    """The accounts' series, built from their snapshots at each scrape (on the server's
    thread): every declared account, and every account ``accounts()`` reports."""

    wall: clock.Wall
    declared: dict[str, None] = attrs.field(factory=dict)  # a set that keeps config order
    _source: AccountsSource | None = None
    _token: trio.lowlevel.TrioToken | None = None
    _trio_thread: int | None = None
    _last: Mapping[str, tuple[float, HealthStatistics]] = attrs.field(factory=dict)

    def watch(self, source: AccountsSource) -> None:
        self._source = source
        try:
            self._token = trio.lowlevel.current_trio_token()
        except RuntimeError:  # not in trio: nothing to ask, no series
            return
        self._trio_thread = threading.get_ident()

    def describe(self) -> Iterable[Metric]:
        # Without describe, registering (auto_describe) would call collect on the trio thread.
        return self._families({})

    def collect(self) -> Iterable[Metric]:
        return self._families(self._snapshot())

    def _snapshot(self) -> Mapping[str, tuple[float, HealthStatistics]]:
        """Each account's statistics with the wall time its last frame came, taken on the trio
        thread; the last snapshot when that thread does not answer in time."""
        source, token = self._source, self._token
        if source is None or token is None:
            return {}
        if threading.get_ident() == self._trio_thread:
            return self._take(source)
        taken: list[Mapping[str, tuple[float, HealthStatistics]]] = []
        done = threading.Event()

        def take() -> None:
            try:
                taken.append(self._take(source))
            finally:
                done.set()

        try:
            token.run_sync_soon(take)
        except trio.RunFinishedError:
            return self._last
        if done.wait(SNAPSHOT_TIMEOUT) and taken:
            self._last = taken[0]
        return self._last

    def _take(self, source: AccountsSource) -> dict[str, tuple[float, HealthStatistics]]:
        wall, now = self.wall(), trio.current_time()
        return {
            name: (math.nan if s.last_frame is None else wall - (now - s.last_frame), s)
            for name, s in source().items()
        }

    def _families(self, accounts: Mapping[str, tuple[float, HealthStatistics]]) -> list[Metric]:
        up, reconnects, frames, errors, last_frame = (
            kind(name, doc, labels=("account",)) for kind, name, doc in ACCOUNT_SERIES
        )
        for name in self.declared:
            if name not in accounts:
                for family in (up, reconnects, frames, errors):
                    family.add_metric([name], 0)
        for name, (last, s) in accounts.items():
            up.add_metric([name], 1 if s.connected else 0)
            reconnects.add_metric([name], s.reconnects)
            frames.add_metric([name], s.frames)
            errors.add_metric([name], s.decode_errors)
            if not math.isnan(last):
                last_frame.add_metric([name], last)
        return [up, reconnects, frames, errors, last_frame]


# The accounts' series, in the order ``_families`` fills them.
ACCOUNT_SERIES: Sequence[tuple[type[CounterMetricFamily | GaugeMetricFamily], str, str]] = (
    (GaugeMetricFamily, "alertd_stream_up", "1 while the account's websocket is connected"),
    (CounterMetricFamily, "alertd_stream_reconnects", "Reconnect attempts per account"),
    (CounterMetricFamily, "alertd_frames", "Frames received per account"),
    (
        CounterMetricFamily,
        "alertd_decode_errors",
        "Frames that could not be decoded (logged and skipped)",
    ),
    (
        GaugeMetricFamily,
        "alertd_stream_last_frame_timestamp_seconds",
        "Unix time of the last frame received per account",
    ),
)
