"""pbxd's process metrics, in one prometheus-client registry others add their own to.

A module-level registry (not prometheus-client's global one): tests and the future HTTP API's
`/metrics` read exactly pbxd's series, and a second import of a library cannot clash with it.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

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


def exposition() -> bytes:
    """Every metric in Prometheus' text format (what `/metrics` serves)."""
    return generate_latest(REGISTRY)


def sample(name: str, **labels: str) -> float:
    """The current value of one series (0 when it has never been set): for tests and health."""
    value = REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value
