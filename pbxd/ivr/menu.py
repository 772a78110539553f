"""A voice menu's decisions as a pure state machine: an input (a key, the prompt over, the
timer) and the current state in, the next state and the actions to take out.

The rules FreePBX's IVR and Asterisk's `Read()`/`WaitExten` made familiar:
- the prompt plays; a key pressed during it stops it and counts (barge-in);
- an entry is one key, or several (extension-style dialling): after each key the menu waits
  `digit_timeout` seconds for the next, `#` ends an entry at once;
- an entry that matches an option is chosen as soon as no longer option starts with it;
- a key that starts no option, or an entry left incomplete, is invalid: the invalid prompt and
  the menu again; silence after the prompt is a timeout: the timeout prompt and the menu again;
- after `retries` such failures the menu gives up (its fallback branch); a flood of keys
  (more than `max_keys` in one menu) gives up too, so nothing a caller presses spins forever.

Nothing here reads a clock or calls Asterisk: the handler turns `Play`, `StopPrompt`, `Wait`
into ARI requests and timers, and feeds back `Key`, `PromptDone`, `TimerFired`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

DTMF_KEYS = frozenset("0123456789*#ABCD")
END_KEY = "#"
# Keys pressed in one menu before it gives up: beyond any honest use, short of a stuck key.
MAX_KEYS = 64


class Prompt(StrEnum):
    """Which of the menu's prompts to play."""

    MENU = "menu"
    INVALID = "invalid"
    TIMEOUT = "timeout"


class Phase(StrEnum):
    """Where the menu stands."""

    PROMPTING = "prompting"  # a prompt plays; a key stops it
    WAITING = "waiting"  # the prompt is over: waiting for the first key
    COLLECTING = "collecting"  # part of an entry is in: waiting for the next key
    DONE = "done"


class GiveUp(StrEnum):
    """Why a menu took its fallback branch."""

    TIMEOUT = "timeout"  # the caller pressed nothing, `retries` times over
    INVALID = "invalid"  # wrong entries (or a flood of keys)


@dataclass(frozen=True, slots=True)
class MenuRules:
    """A menu as its decisions need it: entries to branches, and its patience.

    `options` maps an entry (`"1"`, `"12"`, `"*"`) to a branch name; `repeat` holds the
    entries that play the menu again. `retries` failures (invalid or silent) are forgiven;
    the next one gives up.
    """

    options: Mapping[str, str]
    repeat: frozenset[str] = frozenset()
    timeout: float = 5.0
    digit_timeout: float = 3.0
    retries: int = 2
    max_keys: int = MAX_KEYS
    _prefixes: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        entries = [*self.options, *self.repeat]
        prefixes = {entry[:i] for entry in entries for i in range(1, len(entry))}
        object.__setattr__(self, "_prefixes", frozenset(prefixes))

    def is_entry(self, keys: str) -> bool:
        """Whether `keys` is a whole entry of the menu (an option or a repeat)."""
        return keys in self.options or keys in self.repeat

    def is_prefix(self, keys: str) -> bool:
        """Whether a longer entry starts with `keys` (so the menu waits for more)."""
        return keys in self._prefixes


@dataclass(frozen=True, slots=True)
class MenuState:
    """The menu's state: its phase, the entry so far, failures, and every key pressed."""

    phase: Phase = Phase.PROMPTING
    entry: str = ""
    failures: int = 0
    keys: str = ""  # every key pressed in this menu, in order (the call log shows them)


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class Key:
    """The caller pressed a key (ChannelDtmfReceived)."""

    digit: str


@dataclass(frozen=True, slots=True)
class PromptDone:
    """The prompt played out (or failed): the menu waits for a key."""


@dataclass(frozen=True, slots=True)
class TimerFired:
    """The timer the last `Wait` armed went off."""


Input = Key | PromptDone | TimerFired

# ---------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class Play:
    """Play these prompts, in order, as one playback (replacing nothing: none is playing)."""

    prompts: tuple[Prompt, ...]


@dataclass(frozen=True, slots=True)
class StopPrompt:
    """Stop the prompt playing (a key barged in)."""


@dataclass(frozen=True, slots=True)
class Wait:
    """(Re)arm the menu's one timer for `seconds`."""

    seconds: float


@dataclass(frozen=True, slots=True)
class CancelWait:
    """Disarm the menu's timer."""


@dataclass(frozen=True, slots=True)
class Choose:
    """The caller chose `entry`: go to `branch`. The menu is over."""

    entry: str
    branch: str


@dataclass(frozen=True, slots=True)
class Fallback:
    """The menu gives up (`why`): go to its fallback branch. The menu is over."""

    why: GiveUp


Action = Play | StopPrompt | Wait | CancelWait | Choose | Fallback
Step = tuple[MenuState, tuple[Action, ...]]


def start(rules: MenuRules) -> Step:
    """The menu begins: its prompt plays."""
    return MenuState(), (Play((Prompt.MENU,)),)


def step(rules: MenuRules, state: MenuState, event: Input) -> Step:
    """The next state and the actions for `event`; a finished menu ignores everything."""
    if state.phase is Phase.DONE:
        return state, ()
    if isinstance(event, PromptDone):
        if state.phase is not Phase.PROMPTING:
            return state, ()  # a stopped prompt's end, reported after the key that stopped it
        return replace(state, phase=Phase.WAITING), (Wait(rules.timeout),)
    if isinstance(event, TimerFired):
        if state.phase is Phase.WAITING:
            return _failed(rules, state, GiveUp.TIMEOUT)
        if state.phase is Phase.COLLECTING:
            return _complete(rules, state)
        return state, ()  # a timer overtaken by a prompt: stale
    return _key(rules, state, event.digit)


def _key(rules: MenuRules, state: MenuState, digit: str) -> Step:
    barge: tuple[Action, ...] = (StopPrompt(),) if state.phase is Phase.PROMPTING else ()
    if digit not in DTMF_KEYS:
        digit = "?"  # never an entry: counted as an invalid key
    state = replace(state, keys=state.keys + digit)
    if len(state.keys) > rules.max_keys:
        done = replace(state, phase=Phase.DONE)
        return done, (*barge, CancelWait(), Fallback(GiveUp.INVALID))
    if digit == END_KEY and state.entry and not rules.is_entry(state.entry + digit):
        following, actions = _complete(rules, state)
        return following, (*barge, *actions)
    entry = state.entry + digit
    if rules.is_prefix(entry):
        # A longer entry may follow: wait for the next key, or the inter-digit timeout.
        return replace(state, phase=Phase.COLLECTING, entry=entry), (
            *barge,
            Wait(rules.digit_timeout),
        )
    following, actions = _complete(rules, replace(state, entry=entry))
    return following, (*barge, *actions)


def _complete(rules: MenuRules, state: MenuState) -> Step:
    """The entry is complete: choose it, repeat the menu, or count it invalid."""
    entry = state.entry
    if entry in rules.options:
        done = replace(state, phase=Phase.DONE)
        return done, (CancelWait(), Choose(entry, rules.options[entry]))
    if entry in rules.repeat:
        # Asked for, not a failure; a caller repeating forever ends at max_keys.
        return replace(state, phase=Phase.PROMPTING, entry=""), (
            CancelWait(),
            Play((Prompt.MENU,)),
        )
    return _failed(rules, state, GiveUp.INVALID)


def _failed(rules: MenuRules, state: MenuState, why: GiveUp) -> Step:
    failures = state.failures + 1
    if failures > rules.retries:
        done = replace(state, phase=Phase.DONE, entry="", failures=failures)
        return done, (CancelWait(), Fallback(why))
    again = replace(state, phase=Phase.PROMPTING, entry="", failures=failures)
    prompt = Prompt.INVALID if why is GiveUp.INVALID else Prompt.TIMEOUT
    return again, (CancelWait(), Play((prompt, Prompt.MENU)))
