"""The ARI reference data the tests carry (data/): made by scripts/ari_reference.py, and never
drifting from ../shared/asterisk-ari when that folder is there."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scripts.ari_reference import (
    DEFAULT_OUT,
    DEFAULT_SOURCE,
    build,
    compact_api_docs,
    differences,
    main,
    reference_name,
    write,
)

from .captures import CAPTURES_DIR, capture_names
from .sample_docs import COMPACT_EVENTS, TRACES, write_api_docs, write_source
from .swagger import DATA_DIR, REFERENCE, Swagger

PROSE = frozenset({"description", "notes", "summary", "reason", "descriptioni", "__note"})
no_shared = pytest.mark.skipif(
    not DEFAULT_SOURCE.is_dir(),
    reason=f"{DEFAULT_SOURCE} is absent: nothing to compare the committed copies with",
)


# ---------------------------------------------------------------- committed data
def test_the_validator_reads_the_committed_reference() -> None:
    reference = json.loads(REFERENCE.read_text(encoding="utf-8"))
    assert REFERENCE.name == reference_name(reference["asterisk"]) == "ari-22.10.1.json"
    assert reference["ariVersion"] == "2.0.0"
    assert DATA_DIR == DEFAULT_OUT
    swagger = Swagger.load()
    assert len(swagger.models) == len(reference["models"]) == 85
    assert len(swagger.operations) == 109
    hangup = swagger.find_operation("DELETE", "/channels/17.1")
    assert hangup is not None and hangup.error_codes == {400, 404}
    reason = next(p for p in hangup.parameters if p.name == "reason")
    assert reason.allowable is not None and "no_answer" in reason.allowable["values"]


def test_the_committed_reference_has_no_prose() -> None:
    reference = json.loads(REFERENCE.read_text(encoding="utf-8"))
    specs: list[dict[str, Any]] = []
    for model in reference["models"].values():
        specs += [model, *model["properties"].values()]
    for by_method in reference["operations"].values():
        for op in by_method.values():
            specs += [op, *op["parameters"]]
    assert sorted({k for spec in specs for k in spec} & PROSE) == []


def test_the_traces_are_carried_with_their_readme() -> None:
    assert len(capture_names()) == 9
    assert len(list((CAPTURES_DIR / "media").glob("*.jsonl"))) == 6
    readme = (DATA_DIR / "README.md").read_text(encoding="utf-8")
    for needed in ("| ringall_answer.jsonl |", "| media/snoop_whisper.jsonl |", "GPL-2.0"):
        assert needed in readme
    assert "Things these traces show that are easy to get wrong" in readme


# ------------------------------------------------------------- drift from ../shared
@no_shared
def test_the_committed_reference_is_what_the_script_makes_from_shared() -> None:
    problems = differences(build(DEFAULT_SOURCE), DATA_DIR)
    assert [p for p in problems if "captures/" not in p] == [], "run `make ari-reference`"


@no_shared
def test_the_committed_traces_are_those_of_shared() -> None:
    expected = {n: c for n, c in build(DEFAULT_SOURCE).items() if n.startswith("captures/")}
    assert len(expected) == 15
    problems = differences(build(DEFAULT_SOURCE), DATA_DIR)
    assert [p for p in problems if "captures/" in p] == [], "run `make ari-reference`"


# ------------------------------------------------------------------- the script
def test_compact_keeps_the_facts_and_drops_the_prose(tmp_path: Path) -> None:
    assert compact_api_docs(write_api_docs(tmp_path)) == COMPACT_EVENTS


def test_raw_and_compact_docs_validate_alike(tmp_path: Path) -> None:
    source = write_source(tmp_path / "src")
    compact = json.loads(build(source)["ari-22.10.1.json"])
    assert compact["asterisk"] == "22.10.1"
    assert compact["copyright"] == ["Copyright (C) 2012 - 2013, Digium, Inc."]
    for swagger in (Swagger.load(source / "api-docs"), Swagger.from_reference(compact)):
        event = {"type": "StasisStart", "application": "pbxd", "args": []}
        event["timestamp"] = "2026-11-23T19:02:21.212+0000"
        assert swagger.validate_event(event) == []
        assert swagger.validate_event({**event, "state": "Rung"}) == [
            "StasisStart.state: 'Rung' not in ['Up', 'Down']"
        ]
        assert swagger.validate_request("GET", "/events", {"subscribeAll": "yes"}) == [
            "GET /events: missing required parameter 'app'",
            "GET /events: parameter subscribeAll: 'yes' is not a boolean",
        ]


def test_the_output_is_deterministic(tmp_path: Path) -> None:
    source = write_source(tmp_path / "src")
    first = build(source)
    assert build(source) == first
    assert sorted(first) == sorted(["README.md", "ari-22.10.1.json", *TRACES])
    assert first["README.md"].decode().endswith(source.joinpath("README.md").read_text())


def test_the_drift_check_names_each_file_that_drifted(tmp_path: Path) -> None:
    source, out = write_source(tmp_path / "src"), tmp_path / "out"
    files = build(source)
    assert differences(files, out) == [f"missing: {name}" for name in sorted(files)]
    write(files, out)
    assert differences(files, out) == []
    (out / "ari-22.10.1.json").write_bytes(files["ari-22.10.1.json"].replace(b"400", b"404"))
    (out / "captures/media/play.jsonl").unlink()
    (out / "captures/old.jsonl").write_bytes(b"{}\n")
    (out / "notes.txt").write_text("not ours")
    assert differences(files, out) == [
        "missing: captures/media/play.jsonl",
        "differs: ari-22.10.1.json",
        "extra: captures/old.jsonl",
    ]
    write(files, out)
    assert differences(files, out) == []
    assert (out / "notes.txt").is_file()


def test_the_script_checks_writes_and_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, out = write_source(tmp_path / "src"), tmp_path / "out"
    args = ["--source", str(source), "--out", str(out)]
    assert main([*args, "--check"]) == 1
    assert main(args) == 0
    assert main([*args, "--check"]) == 0
    assert f"added {out / 'ari-22.10.1.json'}" in capsys.readouterr().out
    (source / "README.md").write_text("no version here\n")
    assert main(args) == 2
    assert "give --asterisk-version" in capsys.readouterr().err
    assert main([*args, "--asterisk-version", "22.10.1", "--check"]) == 1
    assert main([*args, "--source", str(tmp_path / "nothing"), "--asterisk-version", "1.0.0"]) == 2
