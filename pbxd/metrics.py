"""pbxd's process metrics, in one prometheus-client registry others add their own to.

A module-level registry (not prometheus-client's global one): tests and `/metrics` read
exactly pbxd's series, and a second import of a library cannot clash with it.

Labels stay bounded: a route's name (from the configuration), a disposition or a leg outcome
(fixed sets), an HTTP route pattern. Never a caller's number, a DID or a call id: per-number
figures are the API's reports. Live figures (calls in progress, ARI state, CDR backlog) are
read from the running daemon at scrape time (`watch`), not kept up to date on the call path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)

ARI_BAD_EVENTS = Counter(
    "pbxd_ari_bad_events",
    "ARI event-stream messages pbxd could not read, by kind (json, event, binary)",
    ["kind"],
    registry=REGISTRY,
)

HTTP_REQUESTS = Counter(
    "pbxd_http_requests",
    "HTTP requests answered, by route pattern (never a number or id), method and status",
    ["route", "method", "status"],
    registry=REGISTRY,
)
HTTP_SECONDS = Histogram(
    "pbxd_http_request_seconds",
    "Time to answer an HTTP request, by route pattern",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)
CALLS = Counter(
    "pbxd_calls",
    "Calls ended, by route (none: unrouted) and disposition",
    ["route", "disposition"],
    registry=REGISTRY,
)
LEGS = Counter(
    "pbxd_legs",
    "Legs ended, by outcome (answered, no answer, busy, rejected, unreachable, ...)",
    ["outcome"],
    registry=REGISTRY,
)
ANSWER_DELAY = Histogram(
    "pbxd_answer_delay_seconds",
    "From a call's arrival to its answer by a person, answered calls",
    buckets=(1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 300),
    registry=REGISTRY,
)
EVENT_TO_ACTION = Histogram(
    "pbxd_event_to_action_seconds",
    "From a call's StasisStart (Asterisk's timestamp) to pbxd's first leg for it",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)


@dataclass(frozen=True, slots=True)
class DaemonFigures:
    """What the running daemon says about itself at one scrape."""

    calls_in_progress: int = 0
    ari_connected: bool = False
    ari_connections: int = 0  # successful connections since start (the first is not a reconnect)
    cdr_backlog: int = 0
    cdr_spooled: int = 0
    cdr_refused: int = 0
    cdr_rejected: int = 0


class _DaemonCollector(Collector):
    """Reads `DaemonFigures` from the running daemon when Prometheus scrapes."""

    def __init__(self) -> None:
        self.read: Callable[[], DaemonFigures] | None = None

    def describe(self) -> Iterator[Metric]:
        return self._families(DaemonFigures())

    def collect(self) -> Iterator[Metric]:
        if self.read is None:
            return iter(())
        return self._families(self.read())

    @staticmethod
    def _families(f: DaemonFigures) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "pbxd_calls_in_progress", "Calls pbxd drives now", value=f.calls_in_progress
        )
        yield GaugeMetricFamily(
            "pbxd_ari_connected",
            "1 while the ARI event stream is connected, else 0",
            value=int(f.ari_connected),
        )
        yield CounterMetricFamily(
            "pbxd_ari_reconnects",
            "Times the ARI event stream connected again after the first time",
            value=max(0, f.ari_connections - 1),
        )
        yield GaugeMetricFamily(
            "pbxd_cdr_backlog", "CDR records queued in memory, not yet written", value=f.cdr_backlog
        )
        yield GaugeMetricFamily(
            "pbxd_cdr_spooled", "CDR records waiting in the spool file", value=f.cdr_spooled
        )
        yield CounterMetricFamily(
            "pbxd_cdr_refused_rows",
            "CDR records refused (backlog full without spool, or store closed)",
            value=f.cdr_refused,
        )
        yield CounterMetricFamily(
            "pbxd_cdr_rejected_rows",
            "CDR rows the database rejected on their merits",
            value=f.cdr_rejected,
        )


_DAEMON = _DaemonCollector()
REGISTRY.register(_DAEMON)


def watch(read: Callable[[], DaemonFigures] | None) -> None:
    """Read live figures with `read` at each scrape (None: the daemon stopped)."""
    _DAEMON.read = read


def exposition() -> bytes:
    """Every metric in Prometheus' text format (what `/metrics` serves)."""
    return generate_latest(REGISTRY)


def sample(name: str, **labels: str) -> float:
    """The current value of one series (0 when it has never been set): for tests and health."""
    value = REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value
