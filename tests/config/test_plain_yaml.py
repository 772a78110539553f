"""The plain-YAML reader gives exactly libyaml's tree and marks, or steps aside.

`read_plain_yaml` reads the subset pbxd's large files are written in, a line at a time; the
careful path (libyaml's events) reads everything. Wherever the plain reader answers, its tree,
every key, value and item mark included, must be the careful one, and a compile through it
must give the same Config and the same diagnostics.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pbxd.config import yamlsource
from pbxd.config.compile import CompileResult, compile_config
from pbxd.config.diagnostics import Diagnostics
from pbxd.config.yamlsource import load_yaml_carefully, read_plain_yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
from config_load import generate  # noqa: E402
from marked_trees import difference  # noqa: E402


def read_both(text: str) -> tuple[bool, Any, Any, Diagnostics]:
    """(plain read it, plain tree, careful tree, careful diagnostics)."""
    plain, tree = read_plain_yaml(text, "f.yaml")
    diagnostics = Diagnostics()
    careful = load_yaml_carefully(text, "f.yaml", diagnostics)
    return plain, tree, careful, diagnostics


def assert_same_or_declined(text: str) -> bool:
    """Whether the plain reader read `text`; when it did, it gave the careful tree."""
    plain, tree, careful, diagnostics = read_both(text)
    if plain:
        assert not diagnostics.items, [str(d) for d in diagnostics.items]
        assert difference(tree, careful) is None, difference(tree, careful)
    return plain


READ = [
    "a: 1\nb: x y\n",
    "a: '+33 1 70 00 00 01'   # a comment\nb: \"PJSIP/{number}@out\"\n",
    "# head\n\nroot:\n  child:\n    leaf: v\n  other: [a, 'b', \"c\"]\n",
    "numbers:\n- number: '+33170000001'\n- number: +33170000002\n  label: two\n",
    "numbers:\n      - number: '1'\n      -   number: '2'\n          status: porting\n",
    "targets: [t0, {target: t1, ring_time: 15}, {target: t2, confirm: true}]\n",
    "empty: []\nnested: [[a, b], [c]]\n",
    "bools: [yes, no, on, off, true, False, ~, null]\nday: 2026-12-15\nhour: 12:30\n",
    "quote: 'it''s'\nurl: http://127.0.0.1:8088/ari\n",
    "items:\n  - a\n  - 'b'\n  - [c]\n  - {k: v}\n",
    "l\u00e9gende: R\u00e9ception \u00e9t\u00e9\n",
    "a:\n  - x: 1\n    y:\n      - z\nb: 2\n",
    # A route's numbers as tools write them (split at once), and the spacings around it.
    "numbers: ['+33170000001', '', 'a b', '+33 1 70 00 00 02']\n",
    "n: ['x']\nm: ['']\nk: ['a','b']\nj: [ 'a', 'b' ]\ni: ['a' , 'b']\nh: ['it''s', 'b']\n",
    "- [hunt, Hunt, ON, on, n, No, ~, 2026-12-15, 12-15, t0, y, x]\n",
]
DECLINED = [
    "a: b: c\n",  # an error
    "yes: 1\n",  # a key read as a boolean
    "a: 1\na: 2\n",  # duplicate key
    "a:\nb: 1\n",  # empty value
    "a: &x 1\nb: *x\n",  # anchors
    "a: !!str 1\n",  # tag
    "a: one\n  two\n",  # multi-line plain scalar
    "a: 'one\n  two'\n",  # multi-line quoted scalar
    "a:\tb\n",  # tab
    "a: 1\r\nb: 2\r\n",  # CR line ends
    'a: "x\\ty"\n',  # escape
    "- - x\n",  # nested compact list
    "a: [x, y,]\n",  # trailing comma
    "a: [x,\n  y]\n",  # flow over two lines
    "'quoted': 1\n",  # quoted key
    "a: x#y\n",  # '#' inside a plain scalar
    "a: |\n  block\n",  # literal block
    "---\na: 1\n",  # document marker
    "a: 1\n---\nb: 2\n",  # two documents
    "k" * 1100 + ": 1\n",  # key longer than libyaml allows
    "a: \x00\n",  # a character libyaml refuses
    "\ufeffa: 1\n",  # byte order mark
    "a: 1\n b: 2\n",  # bad indentation
    "n:\n  -   number: '2'\n    status: x\n",  # a key left of its mapping
    "",  # empty file
    "# only a comment\n",
    "<<: {a: 1}\n",  # merge key
    "a: {}\n",  # empty flow mapping
    "just text\n",
    "a:\n" + "".join(" " * i + "b:\n" for i in range(1, 70)) + " " * 70 + "c: 1\n",  # deep
]


@pytest.mark.parametrize("text", READ)
def test_plain_reader_reads_the_subset_as_libyaml(text: str) -> None:
    assert assert_same_or_declined(text)


@pytest.mark.parametrize("text", DECLINED)
def test_plain_reader_leaves_anything_else_to_libyaml(text: str) -> None:
    assert not assert_same_or_declined(text)


def test_every_yaml_file_of_the_repository() -> None:
    listed = subprocess.run(
        ["git", "ls-files", "*.yaml", "*.yml"], cwd=REPO, capture_output=True, text=True
    )
    files = [REPO / name for name in listed.stdout.split()] or sorted(REPO.glob("**/*.yaml"))
    read = [f.name for f in files if assert_same_or_declined(f.read_text(encoding="utf-8"))]
    assert "sip-trunks.yaml" in read  # the shipped inventory takes the plain path


@pytest.mark.parametrize("national", [False, True])
def test_bench_configuration_takes_the_plain_path(tmp_path: Path, national: bool) -> None:
    generate(tmp_path, 2_000, national)
    for path in sorted(tmp_path.rglob("*.yaml")):
        assert assert_same_or_declined(path.read_text()), path.name


# Every kind of inventory entry and route, and the errors a large file may have, in the
# forms the plain reader takes (and a few it leaves to libyaml, in the same file).
TRUNKS = """\
trunks:
  carrier:
    inbound_endpoint: trunk-in
    dial: 'PJSIP/{number}@trunk-out'
    allowed_destinations: ['+33', '+44']
    timezone: Europe/Paris
    country: FR
    numbers:
      - number: '+33170000001'
      - number: +33170000002
      - number: 01 70 00 00 03
      - number: '+33170000004'
        label: reception
        status: porting
        port_date: 2026-12-15
        losing_carrier: Orange
      - {number: '+33170000005', label: flow style}
      - number: '+33170000006'
        status: reserved
      - number: '+3317000000'
      - number: '+33170000001'
      - number: '+33170000007'
        lable: typo
      - number: '+33170000009'
        timezone: Mars/Olympus
      - block: b1
        range: '+33180000000 - +33180000099'
      - block: b2
        prefix: '+3318000010'
        count: 10
        label: ten
      - block: b3
        range: '+33180000050 - +33180000059'
      - number: '+33180000005'
      - number: '+442071838750'
        country: GB
      - number: '+33170000008'
  other:
    inbound_endpoint: trunk-two
    dial: 'PJSIP/{number}@trunk-two-out'
    allowed_destinations: ['+33']
    numbers:
      - number: '+33170000020'
"""
ROUTES = """\
country: FR
targets:
  alice:
    softphone: PJSIP/alice
  bob:
    softphone: PJSIP/bob
  mobile:
    external: '+33612345678'
    trunk: carrier
  unused:
    softphone: PJSIP/unused
routes:
  - name: main
    numbers: ['+33170000001', 01 70 00 00 03, '+33 1 70 00 00 02']
    strategy: hunt
    targets: [alice, {target: bob, ring_time: 15}, {target: mobile, confirm: false}]
  - name: porting
    numbers: ['+33170000004', '+33170000005', '+33170000001']
    targets: [alice]
  - block: b1
    targets: [bob]
  - name: split
    numbers: ['+33170000020']
    trunk: carrier
    targets: [alice]
  - name: missing
    numbers: ['+33179999999', '+33170000099']
    targets: [nobody]
  - name: odd
    numbers: ['+33170000008']
    targets:
      - alice
    timeout: 5
    ring_time: 30
"""


def _compile(root: Path, plain: bool, monkeypatch: pytest.MonkeyPatch) -> CompileResult:
    with monkeypatch.context() as patch:
        if not plain:
            patch.setattr(yamlsource, "read_plain_yaml", lambda text, name: (False, None))
        return compile_config(root / "pbxd.yaml")


@pytest.mark.parametrize("broken", [False, True])
def test_plain_and_careful_compiles_are_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broken: bool
) -> None:
    monkeypatch.chdir(tmp_path)
    generate(tmp_path, 3_000, offset=5_000)
    if broken:
        (tmp_path / "sip-trunks.yaml").write_text(TRUNKS)
        (tmp_path / "routing" / "more.yaml").write_text(ROUTES)
    plain = _compile(tmp_path, True, monkeypatch)
    careful = _compile(tmp_path, False, monkeypatch)
    assert [str(d) for d in plain.diagnostics] == [str(d) for d in careful.diagnostics]
    assert plain.config == careful.config
    if broken:
        assert plain.config is None and len(plain.diagnostics) > 10
        assert read_plain_yaml(TRUNKS, "t")[0] and read_plain_yaml(ROUTES, "r")[0]
    else:
        assert plain.config is not None and len(plain.config.numbers) == 3_000
