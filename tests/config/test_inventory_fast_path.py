"""The inventory's short way (`- number: '+33…'` alone) gives what the full path gives.

Most of a large inventory is single numbers written in E.164 with no other key: the compiler
takes them in runs and builds their VirtualNumbers together (`_Compiler.inventory`), and the
plain reader makes their key and value marks only when asked (`LinePair`). Neither may change
a Config, its numbers' order, or any diagnostic and its FILE:LINE:COLUMN. Nor may the route
index, which no longer keeps a mark per routed number (found again for a message).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pbxd.config import compile as compiler
from pbxd.config import numbering
from pbxd.config.compile import CompileResult, compile_config
from pbxd.config.diagnostics import Mark
from pbxd.config.yamlsource import LinePair, read_plain_yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
from config_load import generate  # noqa: E402

# Runs of numbers alone, broken by every other kind of entry, and the errors a number alone
# can have (listed twice, inside a block listed before or after it, invalid, not E.164).
TRUNKS = """\
trunks:
  carrier:
    inbound_endpoint: trunk-in
    dial: 'PJSIP/{number}@trunk-out'
    allowed_destinations: ['+33']
    timezone: Europe/Paris
    country: FR
    numbers:
      - number: '+33170000001'
      - number: '+33170000002'
      - number: '+33170000003'
        label: reception
      - number: '+33170000004'
      - number: '+33170000001'
      - block: b1
        range: '+33180000000 - +33180000099'
      - number: '+33180000007'
      - number: '+33170000005'
      - block: b2
        range: '+33170000004 - +33170000004'
      - number: '+3317000000'
      - number: 01 70 00 00 06
      - number:   '+33170000008'   # spaces and a comment
      - block: b3
        prefix: '+3317000001'
        count: 10
      - number: '+33170000012'
  zoneless:
    inbound_endpoint: trunk-two
    dial: 'PJSIP/{number}@trunk-two-out'
    allowed_destinations: ['+33']
    numbers:
      - number: '+33170000020'
      - number: '+12125550123'
"""
ROUTES = """\
targets:
  alice:
    softphone: PJSIP/alice
routes:
  - name: main
    numbers: ['+33170000001', '+33170000002', '+33170000003', '+33170000005']
    targets: [alice]
  - block: b1
    targets: [alice]
"""


def _compile(root: Path, short_way: bool, monkeypatch: pytest.MonkeyPatch) -> CompileResult:
    with monkeypatch.context() as patch:
        if not short_way:
            # No number is "valid as written": every entry takes the full path.
            patch.setattr(numbering, "is_valid_e164", lambda text: False)
        return compile_config(root / "pbxd.yaml")


def _write(root: Path, trunks: str, routes: str) -> None:
    (root / "pbxd.yaml").write_text("state_dir: var\n")
    (root / "sip-trunks.yaml").write_text(trunks)
    (root / "routing").mkdir()
    (root / "routing" / "all.yaml").write_text(routes)


@pytest.mark.parametrize("broken", [False, True])
def test_short_and_full_inventory_paths_are_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broken: bool
) -> None:
    monkeypatch.chdir(tmp_path)
    if broken:
        _write(tmp_path, TRUNKS, ROUTES)
    else:
        generate(tmp_path, 3_000)
    short = _compile(tmp_path, True, monkeypatch)
    full = _compile(tmp_path, False, monkeypatch)
    assert [str(d) for d in short.diagnostics] == [str(d) for d in full.diagnostics]
    assert short.config == full.config
    if broken:
        assert short.config is None
    else:
        assert short.config is not None and full.config is not None
        assert list(short.config.numbers) == list(full.config.numbers)  # file order kept
        assert len(short.config.numbers) == 3_000


def test_errors_about_numbers_taken_the_short_way_have_their_marks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, TRUNKS, ROUTES)
    taken = []
    add = compiler._Compiler._add_numbers_alone
    monkeypatch.setattr(
        compiler._Compiler,
        "_add_numbers_alone",
        lambda self, trunk, zone, numbers: (taken.extend(numbers), add(self, trunk, zone, numbers)),
    )
    lines = [str(d) for d in compile_config(tmp_path / "pbxd.yaml").diagnostics]
    # These went the short way: the messages about them have their marks all the same.
    short_way = ["+33170000001", "+33170000002", "+33170000004", "+33170000005", "+33170000008"]
    assert taken == short_way
    assert lines == [
        "sip-trunks.yaml:13:17: warning: number +33170000004 has no route: "
        "its calls will be rejected",
        "sip-trunks.yaml:14:17: error: number +33170000001 is listed twice "
        "(first at sip-trunks.yaml:9:17)",
        "sip-trunks.yaml:17:17: error: number +33180000007 is also in block 'b1' "
        "(sip-trunks.yaml:16:16)",
        "sip-trunks.yaml:20:16: error: block 'b2' contains +33170000004, already listed at "
        "sip-trunks.yaml:13:17",
        "sip-trunks.yaml:21:17: error: '+3317000000' is not a valid number for FR",
        "sip-trunks.yaml:22:17: warning: number +33170000006 has no route: "
        "its calls will be rejected",
        "sip-trunks.yaml:23:19: warning: number +33170000008 has no route: "
        "its calls will be rejected",
        "sip-trunks.yaml:25:17: warning: block 'b3': 10 of 10 numbers have no route: "
        "their calls will be rejected",
        "sip-trunks.yaml:27:17: error: number +33170000012 is also in block 'b3' "
        "(sip-trunks.yaml:25:17)",
        "sip-trunks.yaml:33:17: warning: number +33170000020 has no route: "
        "its calls will be rejected",
        "sip-trunks.yaml:34:17: warning: number +12125550123 has no route: "
        "its calls will be rejected",
    ]


def test_a_number_alone_on_its_line_makes_its_marks_when_asked() -> None:
    plain, tree = read_plain_yaml(TRUNKS, "t.yaml")
    assert plain
    items = tree["trunks"]["carrier"]["numbers"]
    spaced = items[11]
    assert type(spaced) is LinePair and spaced == {"number": "+33170000008"}
    assert spaced.value_mark() == Mark("t.yaml", 23, 19)
    assert spaced._value_marks is None  # the compiler's question made no dict
    assert items.item_marks[11] == spaced.mark == Mark("t.yaml", 23, 9)
    assert spaced.key_marks == {"number": Mark("t.yaml", 23, 9)}
    assert spaced.value_marks == {"number": Mark("t.yaml", 23, 19)}
    spaced.value_marks["number"] = Mark("t.yaml", 1, 1)  # made once, then kept
    assert spaced.value_marks["number"] == Mark("t.yaml", 1, 1)
    assert type(items[2]) is not LinePair  # `label:` under it: a mapping of two keys


# Routes that route a number another route (or the same one) already routes: the message
# names where the first route writes it, found again from that route only for the message.
ROUTED_TWICE = """\
country: FR
targets:
  alice:
    softphone: PJSIP/alice
routes:
  - name: first
    numbers: ['+33170000001', 01 70 00 00 02, '+33 1 70 00 00 03']
    targets: [alice]
  - block: b1
    targets: [alice]
  - name: again
    numbers: ['+33170000004', '+33180000042', '+33170000003', 0170000002, '+33170000001']
    targets: [alice]
  - name: twice
    numbers: ['+33170000004']
    targets: [alice]
  - name: self
    numbers: ['+33170000005', '+33 1 70 00 00 05']
    targets: [alice]
  - name: trunked
    numbers: ['+33170000001', '+33170000006', '+33170000006']
    trunk: carrier
    targets: [alice]
  - name: elsewhere
    numbers: ['+33170000007']
    trunk: nowhere
    targets: [alice]
"""


def test_a_number_routed_twice_is_blamed_with_the_first_routes_mark(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    numbers = "".join(f"      - number: '+3317000000{i}'\n" for i in range(1, 8))
    block = "      - block: b1\n        range: '+33180000000 - +33180000099'\n"
    _write(tmp_path, TRUNKS.split("      - number:")[0] + numbers + block, ROUTED_TWICE)
    result = compile_config(tmp_path / "pbxd.yaml")
    assert [str(d) for d in result.diagnostics] == [
        "routing/all.yaml:12:31: error: number +33180000042 is already routed by route 'b1' "
        "(routing/all.yaml:9:12)",
        "routing/all.yaml:12:47: error: number +33170000003 is already routed by route "
        "'first' (routing/all.yaml:7:47)",
        "routing/all.yaml:12:63: error: number +33170000002 is already routed by route "
        "'first' (routing/all.yaml:7:31)",
        "routing/all.yaml:12:75: error: number +33170000001 is already routed by route "
        "'first' (routing/all.yaml:7:15)",
        "routing/all.yaml:15:15: error: number +33170000004 is already routed by route "
        "'again' (routing/all.yaml:12:15)",
        "routing/all.yaml:18:31: error: number +33170000005 is already routed by route "
        "'self' (routing/all.yaml:18:15)",
        "routing/all.yaml:21:15: error: number +33170000001 is already routed by route "
        "'first' (routing/all.yaml:7:15)",
        "routing/all.yaml:21:47: error: number +33170000006 is already routed by route "
        "'trunked' (routing/all.yaml:21:31)",
        "routing/all.yaml:26:12: error: unknown trunk 'nowhere'",
    ]


@pytest.mark.parametrize(
    ("single", "clash"),
    [("+33170000150", True), ("+33170000203", True), ("+33170000094", False)],
)
def test_a_block_finds_a_single_number_in_any_hundred_it_touches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, single: str, clash: bool
) -> None:
    monkeypatch.chdir(tmp_path)
    head = TRUNKS.split("      - number:")[0]
    block = "      - block: wide\n        range: '+33170000095 - +33170000203'\n"
    _write(tmp_path, f"{head}      - number: '{single}'\n{block}", "routes: []\n")
    errors = [
        str(d) for d in compile_config(tmp_path / "pbxd.yaml").diagnostics if "error" in str(d)
    ]
    expected = f"sip-trunks.yaml:11:16: error: block 'wide' contains {single}, already listed at "
    assert errors == ([f"{expected}sip-trunks.yaml:9:17"] if clash else [])
