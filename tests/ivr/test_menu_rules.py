"""The menu's decisions as a table: inputs in, actions out, no loop and no clock; then
properties that hold whatever a caller presses (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbxd.ivr.menu import (
    CancelWait,
    Choose,
    Fallback,
    GiveUp,
    Input,
    Key,
    MenuRules,
    MenuState,
    Phase,
    Play,
    Prompt,
    PromptDone,
    StopPrompt,
    TimerFired,
    Wait,
    start,
    step,
)

RULES = MenuRules(
    options={"1": "sales", "2": "support", "0": "reception", "12": "billing", "345": "ext-345"},
    repeat=frozenset({"*"}),
    timeout=5,
    digit_timeout=3,
    retries=2,
)
K = Key
DONE = PromptDone()
TICK = TimerFired()
MENU = Play((Prompt.MENU,))
INVALID = Play((Prompt.INVALID, Prompt.MENU))
SILENCE = Play((Prompt.TIMEOUT, Prompt.MENU))


def run(inputs: list[Input], rules: MenuRules = RULES) -> tuple[MenuState, list[object]]:
    state, actions = start(rules)
    out: list[object] = list(actions)
    for event in inputs:
        state, actions = step(rules, state, event)
        out.extend(actions)
    return state, out


CASES = [
    # (what the caller does, the actions the menu takes after its first prompt)
    ("2 after the prompt", [DONE, K("2")], [Wait(5), CancelWait(), Choose("2", "support")]),
    (
        "2 during the prompt: barge-in",
        [K("2")],
        [StopPrompt(), CancelWait(), Choose("2", "support")],
    ),
    (
        "the prompt's end after the barge-in is ignored",
        [K("0"), DONE],
        [StopPrompt(), CancelWait(), Choose("0", "reception")],
    ),
    ("1 waits: 12 may follow", [DONE, K("1")], [Wait(5), Wait(3)]),
    (
        "1 then silence chooses 1",
        [DONE, K("1"), TICK],
        [Wait(5), Wait(3), CancelWait(), Choose("1", "sales")],
    ),
    (
        "1 then # chooses 1 at once",
        [DONE, K("1"), K("#")],
        [Wait(5), Wait(3), CancelWait(), Choose("1", "sales")],
    ),
    (
        "12 chooses billing",
        [DONE, K("1"), K("2")],
        [Wait(5), Wait(3), CancelWait(), Choose("12", "billing")],
    ),
    (
        "345 typed during the prompt",
        [K("3"), K("4"), K("5")],
        [StopPrompt(), Wait(3), Wait(3), CancelWait(), Choose("345", "ext-345")],
    ),
    (
        "34 then silence is invalid",
        [DONE, K("3"), K("4"), TICK],
        [Wait(5), Wait(3), Wait(3), CancelWait(), INVALID],
    ),
    (
        "34# is invalid",
        [DONE, K("3"), K("4"), K("#")],
        [Wait(5), Wait(3), Wait(3), CancelWait(), INVALID],
    ),
    ("9 is no option: invalid at once", [DONE, K("9")], [Wait(5), CancelWait(), INVALID]),
    ("a lone # is invalid", [DONE, K("#")], [Wait(5), CancelWait(), INVALID]),
    ("A (a 16-key keypad) is invalid", [DONE, K("A")], [Wait(5), CancelWait(), INVALID]),
    ("* repeats the menu, not a failure", [DONE, K("*")], [Wait(5), CancelWait(), MENU]),
    ("silence: the timeout prompt, then the menu", [DONE, TICK], [Wait(5), CancelWait(), SILENCE]),
    (
        "silence three times: fallback",
        [DONE, TICK, DONE, TICK, DONE, TICK],
        [
            Wait(5),
            CancelWait(),
            SILENCE,
            Wait(5),
            CancelWait(),
            SILENCE,
            Wait(5),
            CancelWait(),
            Fallback(GiveUp.TIMEOUT),
        ],
    ),
    (
        "wrong, silent, wrong: fallback (invalid, the last failure)",
        [K("9"), DONE, TICK, K("8")],
        [
            StopPrompt(),
            CancelWait(),
            INVALID,
            Wait(5),
            CancelWait(),
            SILENCE,
            StopPrompt(),
            CancelWait(),
            Fallback(GiveUp.INVALID),
        ],
    ),
    (
        "wrong then right",
        [K("9"), K("2")],
        [StopPrompt(), CancelWait(), INVALID, StopPrompt(), CancelWait(), Choose("2", "support")],
    ),
    (
        "a timer during a prompt is stale",
        [TICK, K("2")],
        [StopPrompt(), CancelWait(), Choose("2", "support")],
    ),
    (
        "keys after the choice are ignored",
        [K("2"), K("1"), TICK, DONE],
        [StopPrompt(), CancelWait(), Choose("2", "support")],
    ),
]


@pytest.mark.parametrize(("what", "inputs", "expected"), CASES, ids=[c[0] for c in CASES])
def test_menu_table(what: str, inputs: list[Input], expected: list[object]) -> None:
    _, actions = run(inputs)
    assert actions[0] == MENU
    assert actions[1:] == expected, what


def test_keys_pressed_are_kept_for_the_call_log() -> None:
    state, _ = run([K("9"), DONE, K("1"), K("2")])
    assert state.keys == "912"
    assert state.phase is Phase.DONE


def test_a_flood_of_keys_ends_in_the_fallback() -> None:
    rules = MenuRules(options={"1": "sales"}, repeat=frozenset({"*"}), max_keys=10)
    state, actions = run([K("*")] * 11, rules)
    assert actions[-1] == Fallback(GiveUp.INVALID)
    assert state.phase is Phase.DONE
    assert actions.count(MENU) == 11  # the first prompt and ten repeats, none more


def test_a_menu_with_no_retries_gives_up_at_the_first_failure() -> None:
    rules = MenuRules(options={"1": "sales"}, retries=0)
    _, actions = run([DONE, TICK], rules)
    assert actions[-1] == Fallback(GiveUp.TIMEOUT)


def test_a_key_that_is_an_option_and_a_prefix_waits_then_chooses() -> None:
    rules = MenuRules(options={"1": "a", "11": "b", "111": "c"})
    _, actions = run([DONE, K("1"), K("1"), TICK], rules)
    assert actions[-1] == Choose("11", "b")


def test_hash_itself_can_be_an_option() -> None:
    rules = MenuRules(options={"#": "operator", "1": "sales"})
    _, actions = run([DONE, K("#")], rules)
    assert actions[-1] == Choose("#", "operator")


# ---------------------------------------------------------------- properties

keys = st.sampled_from([*list("0123456789*#ABCD"), "x", ""])
inputs = st.lists(st.one_of(keys.map(Key), st.just(DONE), st.just(TICK)), min_size=0, max_size=200)


@settings(max_examples=400, deadline=None)
@given(inputs)
def test_whatever_is_pressed_the_menu_ends_in_a_defined_branch_or_waits(
    events: list[Input],
) -> None:
    state, _actions = start(RULES)
    finals = []
    for event in events:
        state, out = step(RULES, state, event)
        finals += [a for a in out if isinstance(a, Choose | Fallback)]
        if finals:
            assert out == () or isinstance(out[-1], Choose | Fallback)
    # At most one end; once over, over.
    assert len(finals) <= 1
    if finals:
        assert state.phase is Phase.DONE
        end = finals[0]
        if isinstance(end, Choose):
            assert RULES.options[end.entry] == end.branch
    else:
        # Still going: a prompt plays or a timer is armed, so the caller is never stranded.
        assert state.phase in (Phase.PROMPTING, Phase.WAITING, Phase.COLLECTING)
        assert state.failures <= RULES.retries
    assert len(state.keys) <= RULES.max_keys + 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.just(DONE), st.just(TICK)), max_size=100))
def test_a_caller_who_never_presses_ends_in_the_timeout_fallback(events: list[Input]) -> None:
    # Prompts end and timers fire in any order: enough of both always reach the fallback.
    state, _ = start(RULES)
    ends = []
    for event in [*events, *([DONE, TICK] * (RULES.retries + 1))]:
        state, out = step(RULES, state, event)
        ends += [a for a in out if isinstance(a, Choose | Fallback)]
    assert ends == [Fallback(GiveUp.TIMEOUT)]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(RULES.options)), st.booleans())
def test_every_option_is_reachable_typed_during_or_after_the_prompt(
    entry: str, barge: bool
) -> None:
    state, _ = start(RULES)
    events: list[Input] = [] if barge else [DONE]
    events += [Key(d) for d in entry] + [TICK]
    ends = []
    for event in events:
        state, out = step(RULES, state, event)
        ends += [a for a in out if isinstance(a, Choose | Fallback)]
    assert ends == [Choose(entry, RULES.options[entry])]
