"""docs/openapi.yaml describes every API route the application serves, and nothing else."""

from __future__ import annotations

from pathlib import Path

import yaml

from pbxd.config.compile import compile_config
from pbxd.config.model import Config
from pbxd.web.app import build_app
from pbxd.web.state import Runtime

REPO = Path(__file__).resolve().parents[2]


def test_openapi_lists_exactly_the_served_api_routes(example: Path) -> None:
    spec = yaml.safe_load((REPO / "docs" / "openapi.yaml").read_text())
    documented = {
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        for method in operations
        if method in ("get", "post", "put", "delete", "patch")
    }
    result = compile_config(example / "pbxd.yaml")
    assert result.config is not None
    app = build_app(result.config, Runtime())
    served = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
        and route.method in ("GET", "POST")
        and (
            route.resource.canonical.startswith("/api/")
            or route.resource.canonical in ("/healthz", "/readyz", "/metrics")
        )
    }
    assert documented == served
    for _, path in documented:
        assert path.startswith("/")
    # Every error code the API can give is named in the description.
    for code in (
        "unauthenticated",
        "forbidden",
        "csrf_failed",
        "bad_filter",
        "unknown_number",
        "not_ready",
    ):
        assert code in spec["info"]["description"]


def test_the_grafana_dashboard_reads_only_series_pbxd_exports() -> None:
    import json
    import re

    from pbxd import metrics

    dashboard = json.loads((REPO / "docs" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for e in exprs for name in re.findall(r"\bpbxd_[a-z_]+", e)}
    exported = {
        sample.name for family in metrics.REGISTRY.collect() for sample in family.samples
    } | {
        f"{family.name}_total" for family in metrics.REGISTRY.collect() if family.type == "counter"
    }
    described = {m.name for m in metrics._DAEMON.describe()}
    exported |= described | {f"{n}_total" for n in described} | {f"{n}_bucket" for n in exported}
    missing = sorted(used - exported)
    assert not missing, missing


def test_the_call_and_usage_schemas_name_every_field_the_api_gives() -> None:
    from datetime import UTC, date, datetime
    from zoneinfo import ZoneInfo

    from pbxd.cdr.records import CallLogEntry, CallRecord, Direction, LegRecord
    from pbxd.cdr.reports import call_json
    from pbxd.dialplan.limits import PlanUsage, UsageKind

    schemas = yaml.safe_load((REPO / "docs" / "openapi.yaml").read_text())["components"]["schemas"]
    at = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    call = CallRecord("c1", "+33170000001", at, "alice", direction=Direction.OUTBOUND)
    leg = LegRecord("c1-1", "c1", "alice", "PJSIP/alice", at)
    given = call_json(CallLogEntry(call, [leg]), ZoneInfo("Europe/Paris"))
    documented = set(schemas["Call"]["properties"])
    # Each time has a `*_utc` twin that the schema names once, for started_at.
    assert {k for k in given if not k.endswith("_utc")} - documented == set()
    assert set(given["legs"][0]) - set(schemas["Leg"]["properties"]) == set()
    assert schemas["Call"]["properties"]["direction"]["enum"] == [d.value for d in Direction]
    kinds = dict.fromkeys(UsageKind, 60)
    usage = PlanUsage("reception", kinds, kinds, {date(2026, 12, 3): kinds}).to_json()
    assert set(usage) == set(schemas["Usage"]["properties"])
    assert set(usage["days"][0]) == set(
        schemas["Usage"]["properties"]["days"]["items"]["properties"]
    )


def test_the_number_schema_names_every_field_the_api_gives(config: Config) -> None:
    from pbxd.web.api import number_json

    schemas = yaml.safe_load((REPO / "docs" / "openapi.yaml").read_text())["components"]["schemas"]
    given = number_json(config, config.numbers["+33170000012"], 3)
    assert set(given) == set(schemas["Number"]["properties"])


def test_the_diagnose_example_names_every_field_the_api_gives(config: Config) -> None:
    from datetime import UTC, datetime

    from pbxd.diagnose import Presence, diagnosis_json, examine, plan_check_json

    spec = yaml.safe_load((REPO / "docs" / "openapi.yaml").read_text())
    answer = spec["paths"]["/api/numbers/{number}/diagnose"]["get"]["responses"]["200"]
    example = answer["content"]["application/json"]["example"]
    at = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)
    found = examine(config, "+33170000001", at, [], Presence({}, "test"), set())
    given = diagnosis_json(found)
    assert set(given) == set(example)
    assert found.facts.plan is not None
    assert set(plan_check_json(found.facts.plan)) == set(example["plan"])
