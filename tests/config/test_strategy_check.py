"""`pbxd check` on ring strategies: per-target `start_after`, `enabled`, `weight`, per-route
`max_legs` and `skip_busy`, each problem at its FILE:LINE:COLUMN (routing/teams.yaml)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pbxd.cli.main import main
from pbxd.config.compile import compile_config
from pbxd.vocabulary import RingStrategy

Edit = Callable[[str, str, str], None]


def run_check(capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    status = main(["check"])
    return status, capsys.readouterr().err.splitlines()


def test_the_shipped_teams_compile(example: Path) -> None:
    config = compile_config(example / "pbxd.yaml").config
    assert config is not None
    sales, desk = config.routes["sales"], config.routes["order-desk"]
    assert sales.strategy is RingStrategy.STAGGERED
    assert [(r.target.name, r.start_after) for r in sales.targets] == [
        ("alice", 0),
        ("carol", 0),
        ("ceo-mobile", 3),
    ]
    assert (desk.strategy, desk.skip_busy, desk.max_legs) == (RingStrategy.ROUNDROBIN, True, None)


TEAM_PROBLEMS = [
    pytest.param(
        "{target: ceo-mobile, start_after: 3}",
        "{target: ceo-mobile, start_after: 30}",
        "routing/teams.yaml:23:43: warning: target 'ceo-mobile' never rings: it joins after "
        "30 s but the route times out after 30 s",
        0,
        id="joins-after-the-timeout",
    ),
    pytest.param(
        "{target: ceo-mobile, start_after: 3}",
        "{target: ceo-mobile, start_after: -3}",
        "routing/teams.yaml:23:43: error: start_after must be between 0 and 3600 seconds, not -3",
        1,
        id="negative-start-after",
    ),
    pytest.param(
        "targets: [dave, erin, frank]",
        "targets: [dave, {target: erin, start_after: 5}, frank]",
        "routing/teams.yaml:30:49: warning: start_after is only used by `strategy: staggered` "
        "(this route is roundrobin): it is ignored",
        0,
        id="start-after-outside-staggered",
    ),
    pytest.param(
        "targets: [dave, erin, frank]",
        "targets: [dave, {target: erin, weight: 0}, frank]",
        "routing/teams.yaml:30:44: error: weight must be between 1 and 1000, not 0",
        1,
        id="weight-zero",
    ),
    pytest.param(
        "targets: [dave, erin, frank]",
        "targets: [dave, {target: erin, weight: 2}, frank]",
        "routing/teams.yaml:30:44: warning: weight is only used by `strategy: weighted` "
        "(this route is roundrobin): it is ignored",
        0,
        id="weight-outside-weighted",
    ),
    pytest.param(
        "targets: [dave, erin, frank]",
        "targets: [dave, {target: erin, enabled: yes please}, frank]",
        "routing/teams.yaml:30:45: error: enabled: must be true or false, not 'yes please'",
        1,
        id="enabled-not-a-flag",
    ),
    pytest.param(
        "    ring_time: 15\n    timeout: 45",
        "    ring_time: 15\n    timeout: 45\n    max_legs: 0",
        "routing/teams.yaml:33:15: error: max_legs must be between 1 and 10000, not 0",
        1,
        id="max-legs-zero",
    ),
    pytest.param(
        "skip_busy: true ",
        "skip_busy: sometimes ",
        "routing/teams.yaml:33:16: error: skip_busy: must be true or false, not 'sometimes'",
        1,
        id="skip-busy-not-a-flag",
    ),
    pytest.param(
        "targets: [dave, erin, frank]",
        "targets: [{target: dave, enabled: false}, {target: erin, enabled: false}]",
        "routing/teams.yaml:30:5: warning: every target of the route is disabled "
        "(`enabled: false`): nobody rings",
        0,
        id="all-disabled",
    ),
]


@pytest.mark.parametrize(("old", "new", "expected", "status"), TEAM_PROBLEMS)
def test_strategy_problem_is_placed(
    edit: Edit,
    capsys: pytest.CaptureFixture[str],
    old: str,
    new: str,
    expected: str,
    status: int,
) -> None:
    edit("routing/teams.yaml", old, new)
    code, err = run_check(capsys)
    assert any(line.startswith(expected) for line in err), "\n".join(err)
    assert code == status
