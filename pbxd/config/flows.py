"""The call-flow half of routing files: opening hours, mailboxes, greetings, fallbacks.

`RouteFlows` is used by the compiler. It compiles each route's flow keys into the `Route`
fields, then checks the graph the routes make with their `goto`s, which no single anchor
can see: a branch that leads nowhere, a voicemail with no box, a `goto` loop in which no
step waits, a route nothing reaches, opening hours that never open.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pbxd.config.diagnostics import Diagnostics, Mark, did_you_mean
from pbxd.config.files import (
    ActionEntry,
    FallbackAction,
    GreetingEntry,
    HangupReason,
    MailboxEntry,
    MenuEntry,
    RouteEntry,
)
from pbxd.config.model import Config, Fallback, Greeting, Menu
from pbxd.config.numbering import is_time_zone
from pbxd.config.schedule import ScheduleError, parse_opening_hours
from pbxd.config.yamlsource import MarkedMap, locate
from pbxd.dialplan.flow import Mailbox
from pbxd.dialplan.hours import OpeningHours
from pbxd.ivr.menu import DTMF_KEYS

# What Asterisk plays a `sound:` prompt from (the formats it transcodes on the fly).
SOUND_EXTENSIONS = (".wav", ".WAV", ".sln", ".sln16", ".gsm", ".ulaw", ".alaw", ".g722", ".g729")
MAX_MAILBOX_SECONDS = 3600
# Asterisk's core sounds, in every language pack: "please leave your message after the tone".
DEFAULT_MAILBOX_GREETING = ("sound:vm-intro",)
FLOATING_ZONE = ""  # hours written without `timezone`: each number's own zone applies
_DEFAULT_CAUSES = {
    "no_answer": HangupReason.NO_ANSWER,
    "busy": HangupReason.BUSY,
    "unavailable": HangupReason.CONGESTION,
    "closed": HangupReason.NORMAL,
    "then": HangupReason.NORMAL,
    "fallback": HangupReason.NORMAL,
}
# A menu entry is at most this many keys (extension-style dialling: 2 to 6 in practice).
MAX_ENTRY_KEYS = 8
MAX_MENU_TIMEOUT = 60
MAX_MENU_RETRIES = 10
REPEAT = "repeat"


@dataclass
class _RouteNode:
    """A route as a node of the goto graph."""

    mark: Mark
    waits: bool  # rings, greets or records: a loop through it is a caller kept busy
    entered: bool  # a number or block calls it
    edges: list[tuple[str, Fallback]] = field(default_factory=list)


class RouteFlows:
    """Compiles and checks the flow parts of every routing file."""

    def __init__(self, diags: Diagnostics, config: Config) -> None:
        self.diags = diags
        self.config = config
        self.hours_marks: dict[str, Mark] = {}
        self.mailbox_marks: dict[str, Mark] = {}
        self.used_hours: set[str] = set()
        self.used_mailboxes: set[str] = set()
        self.broken: set[str] = set()  # hours or mailboxes with their own error
        self.nodes: dict[str, _RouteNode] = {}
        self.prompts: list[tuple[str, Mark]] = []
        self.reached_by_broken: set[str] = set()  # goto targets of routes with errors
        self.broken_routes: set[str] = set()  # routes with their own error (no cascade)

    # ---- top-level sections

    def hours(self, name: str, raw: Any, key_mark: Mark) -> None:
        """One entry of a routing file's `hours:`."""
        if name in self.hours_marks:
            self.diags.error(
                key_mark, f"hours '{name}' are defined twice (first at {self.hours_marks[name]})"
            )
            return
        parsed = self._opening_hours(name, raw, key_mark)
        if parsed is None:
            self.broken.add(name)
            return
        self.hours_marks[name] = key_mark
        self.config.hours[name] = parsed

    def _opening_hours(self, name: str, raw: Any, mark: Mark) -> OpeningHours | None:
        zone = raw.get("timezone") if isinstance(raw, dict) else None
        if zone is not None and not is_time_zone(str(zone)):
            self.diags.error(locate(raw, ["timezone"], mark)[0], f"unknown time zone '{zone}'")
            return None
        try:
            hours = parse_opening_hours(name, raw, str(zone) if zone else "UTC")
        except ScheduleError as exc:
            self.diags.error(locate(raw, exc.key, mark)[0], str(exc))
            return None
        if zone is None:
            hours = hours.floating()
        if hours.never_open():
            self.diags.error(mark, f"opening hours '{name}' are never open: add `weekly:` hours")
            return None
        return hours

    def mailbox(self, name: str, raw: Any, key_mark: Mark, entry: MailboxEntry) -> None:
        """One entry of a routing file's `mailboxes:` (already validated as a MailboxEntry)."""
        if name in self.mailbox_marks:
            self.diags.error(
                key_mark,
                f"mailbox '{name}' is defined twice (first at {self.mailbox_marks[name]})",
            )
            return
        ok = True
        if not 1 <= entry.max_seconds <= MAX_MAILBOX_SECONDS:
            self.diags.error(
                locate(raw, ["max_seconds"], key_mark)[0],
                f"max_seconds must be between 1 and {MAX_MAILBOX_SECONDS}, not {entry.max_seconds}",
            )
            ok = False
        if not 0 <= entry.min_seconds < entry.max_seconds:
            self.diags.error(
                locate(raw, ["min_seconds"], key_mark)[0],
                f"min_seconds must be from 0 to under max_seconds ({entry.max_seconds})",
            )
            ok = False
        if not 0 <= entry.silence_seconds <= 60:
            self.diags.error(
                locate(raw, ["silence_seconds"], key_mark)[0],
                "silence_seconds must be between 0 (off) and 60",
            )
            ok = False
        if entry.finish_key not in ("#", "*", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9"):
            self.diags.error(
                locate(raw, ["finish_key"], key_mark)[0],
                f"finish_key must be one key of the keypad, not '{entry.finish_key}'",
            )
            ok = False
        if entry.email is not None and not _looks_like_email(entry.email):
            self.diags.error(
                locate(raw, ["email"], key_mark)[0], f"'{entry.email}' is not an e-mail address"
            )
            ok = False
        greeting_seq = raw.get("greeting") if isinstance(raw, dict) else None
        for index, prompt in enumerate(entry.greeting):
            self.prompt(prompt, locate(greeting_seq, [index], key_mark)[0])
        if not ok:
            self.broken.add(name)
            return
        self.mailbox_marks[name] = key_mark
        self.config.mailboxes[name] = Mailbox(
            name=name,
            email=entry.email,
            greeting=tuple(f"sound:{p}" for p in entry.greeting) or DEFAULT_MAILBOX_GREETING,
            language=entry.language,
            max_seconds=entry.max_seconds,
            min_seconds=entry.min_seconds,
            silence_seconds=entry.silence_seconds,
            finish_key=entry.finish_key,
        )

    # ---- a route's flow keys

    def route_parts(
        self, name: str, entry: RouteEntry, raw: MarkedMap, mark: Mark, entered: bool
    ) -> dict[str, Any]:
        """The flow fields of `Route` for one route entry, and its node in the goto graph."""
        parts: dict[str, Any] = {}
        for key in ("no_answer", "busy", "unavailable", "closed", "then"):
            action: ActionEntry | None = getattr(entry, key)
            if action is not None:
                where = raw.mark_of(key) if key in raw else mark
                parts[key] = self._fallback(key, action, where)
        if entry.hours is not None:
            parts["hours"] = self._route_hours(name, entry.hours, raw, mark)
            if "closed" not in parts:
                self.diags.error(
                    raw.key_marks.get("hours", mark),
                    f"route '{name}' has opening hours but no `closed:` "
                    "(say where calls go outside them: voicemail, goto or hangup)",
                )
            elif parts["hours"] is not None and parts["hours"].always_open():
                self.diags.warning(
                    raw.key_marks["closed"], "`closed:` is never used: the hours are always open"
                )
        elif "closed" in parts:
            self.diags.warning(
                raw.key_marks["closed"], "`closed:` is never used: the route has no `hours:`"
            )
        if entry.greeting is not None:
            parts["greeting"] = self._greeting(entry.greeting, raw.get("greeting"), mark)
        menu_edges: list[tuple[str, Fallback]] = []
        if entry.menu is not None:
            where = raw.key_marks.get("menu", mark)
            parts["menu"] = self._menu(entry.menu, raw.get("menu"), where, menu_edges)
            if entry.targets:
                self.diags.error(
                    where,
                    f"route '{name}' has a menu and targets: a menu rings no one itself, "
                    "put `targets:` in the routes its options go to",
                )
        if entry.menu is not None:
            if "then" in parts:
                self.diags.warning(
                    raw.key_marks["then"],
                    "`then:` is never used: a menu goes on by its options and `fallback:`",
                )
        elif not entry.targets:
            for key in ("busy", "unavailable"):
                if key in raw.key_marks:
                    self.diags.warning(
                        raw.key_marks[key], f"`{key}:` is never used: the route rings nobody"
                    )
        elif "then" in parts:
            self.diags.warning(
                raw.key_marks["then"],
                "`then:` is never used: a route with targets goes on by no_answer, busy "
                "and unavailable",
            )
        node = _RouteNode(
            mark,
            # A menu waits for the caller's keys: a loop through it is a caller choosing.
            waits=bool(entry.targets or entry.menu) or bool(entry.greeting and entry.greeting.play),
            entered=entered,
        )
        for key, fallback in [*parts.items(), *menu_edges]:
            if isinstance(fallback, Fallback):
                node.edges.append((key, fallback))
                node.waits |= fallback.action is FallbackAction.VOICEMAIL
        self.nodes[name] = node
        return {key: value for key, value in parts.items() if value is not None}

    def _menu(
        self, entry: MenuEntry, raw: Any, mark: Mark, edges: list[tuple[str, Fallback]]
    ) -> Menu | None:
        """A route's `menu:`; its branches go in `edges` (the goto graph checks them)."""
        ok = True
        raw_map = raw if isinstance(raw, MarkedMap) else MarkedMap(mark)
        for key, limit in (("timeout", MAX_MENU_TIMEOUT), ("digit_timeout", MAX_MENU_TIMEOUT)):
            value = getattr(entry, key)
            if not 1 <= value <= limit:
                self.diags.error(
                    raw_map.mark_of(key), f"menu {key} must be 1 to {limit} seconds, not {value}"
                )
                ok = False
        if not 0 <= entry.retries <= MAX_MENU_RETRIES:
            self.diags.error(
                raw_map.mark_of("retries"),
                f"menu retries must be 0 to {MAX_MENU_RETRIES}, not {entry.retries}",
            )
            ok = False
        prompts: dict[str, tuple[str, ...]] = {}
        for key in ("prompt", "invalid_prompt", "timeout_prompt"):
            prompts[key] = self.prompt_list(getattr(entry, key), raw_map, key, mark)
        if not entry.prompt:
            self.diags.error(raw_map.mark_of("prompt"), "menu: name at least one prompt to play")
            ok = False
        raw_options = raw_map.get("options")
        options_map = raw_options if isinstance(raw_options, MarkedMap) else MarkedMap(mark)
        options: dict[str, Fallback] = {}
        repeat: set[str] = set()
        for key, value in entry.options.items():
            key_mark = options_map.key_marks.get(key, options_map.mark)
            where = options_map.mark_of(key)
            if not key or len(key) > MAX_ENTRY_KEYS or any(c not in DTMF_KEYS for c in key):
                self.diags.error(
                    key_mark,
                    f"menu option '{key[:20]}' must be 1 to {MAX_ENTRY_KEYS} keys of the keypad "
                    '(0-9, *, #, A-D; quote "*" and "#" in YAML)',
                )
                ok = False
                continue
            if isinstance(value, str) and value == REPEAT:
                repeat.add(key)
                continue
            if isinstance(value, str):
                options[key] = Fallback(FallbackAction.GOTO, route=value, mark=where)
            else:
                action = _action(value)
                if action is None:
                    self.diags.error(
                        where,
                        f"menu option {key}: write a route name, `repeat`, or one action "
                        "({goto: ROUTE}, {voicemail: BOX}, {hangup: CAUSE})",
                    )
                    ok = False
                    continue
                options[key] = self._fallback(f"menu option {key}", action, where)
            edges.append((f"menu option {key}", options[key]))
        if not options:
            self.diags.error(
                options_map.mark if raw_options is not None else mark,
                "menu: give at least one option (`options: {1: sales, 2: support}`)",
            )
            ok = False
        fallback_mark = raw_map.mark_of("fallback")
        fallback = (
            self._fallback("menu fallback", entry.fallback, fallback_mark)
            if entry.fallback is not None
            else Fallback(FallbackAction.HANGUP, HangupReason.NORMAL, mark=mark)
        )
        edges.append(("menu fallback", fallback))
        if not ok:
            return None
        return Menu(
            prompts=prompts["prompt"],
            options=options,
            repeat=frozenset(repeat),
            timeout=entry.timeout,
            digit_timeout=entry.digit_timeout,
            retries=entry.retries,
            invalid_prompts=prompts["invalid_prompt"],
            timeout_prompts=prompts["timeout_prompt"],
            fallback=fallback,
        )

    def _fallback(self, key: str, action: ActionEntry, where: Mark) -> Fallback:
        return self.fallback(key, action, where, _DEFAULT_CAUSES.get(key, HangupReason.NORMAL))

    def fallback(
        self, key: str, action: ActionEntry, where: Mark, default: HangupReason
    ) -> Fallback:
        """Where `key` sends a call (hangup with `default` unless a cause is given)."""
        if action.action is FallbackAction.HANGUP:
            if action.box is not None or action.route is not None:
                self.diags.error(where, f"{key}: a hangup takes only `cause`")
            return Fallback(action.action, action.cause or default, mark=where)
        if action.cause is not None:
            self.diags.error(where, f"{key}: `cause` goes only with `action: hangup`")
        if action.action is FallbackAction.VOICEMAIL:
            if action.box is None:
                self.diags.error(where, f"{key}: a voicemail needs a box (`voicemail: BOX`)")
            return Fallback(action.action, mailbox=action.box, mark=where)
        if action.route is None:
            self.diags.error(where, f"{key}: a goto needs a route (`goto: ROUTE`)")
        return Fallback(action.action, route=action.route, mark=where)

    def _route_hours(
        self, route: str, value: Any, raw: MarkedMap, mark: Mark
    ) -> OpeningHours | None:
        where = raw.key_marks.get("hours", mark)
        if isinstance(value, str):
            self.used_hours.add(value)
            found = self.config.hours.get(value)
            if found is None and value not in self.broken:
                hint = did_you_mean(value, self.config.hours)
                self.diags.error(raw.mark_of("hours"), f"unknown hours '{value}'{hint}")
            return found
        return self._opening_hours(f"{route} hours", raw.get("hours"), where)

    def _greeting(self, entry: GreetingEntry, raw: Any, mark: Mark) -> Greeting | None:
        if not entry.play:
            self.diags.error(locate(raw, [], mark)[0], "greeting: name at least one prompt to play")
            return None
        seq = raw.get("play") if isinstance(raw, dict) else raw
        for index, prompt in enumerate(entry.play):
            self.prompt(prompt, locate(seq, [index], mark)[0])
        return Greeting(tuple(f"sound:{p}" for p in entry.play), entry.answer)

    def prompt_list(
        self, names: list[str], raw: MarkedMap, key: str, mark: Mark
    ) -> tuple[str, ...]:
        """A list of prompts under `key` of `raw`, each checked, as `sound:` URIs."""
        seq = raw.get(key)
        for index, prompt in enumerate(names):
            self.prompt(prompt, locate(seq, [index], raw.mark_of(key) if key in raw else mark)[0])
        return tuple(f"sound:{p}" for p in names)

    def prompt(self, prompt: str, mark: Mark) -> None:
        """Note a prompt to play (checked to exist in sounds_dir at the end)."""
        if not prompt or not all(c.isalnum() or c in "-_./" for c in prompt) or ".." in prompt:
            self.diags.error(
                mark,
                f"prompt '{prompt[:80]}' must be a sound file name "
                "(letters, digits, - _ . /, no extension needed)",
            )
            return
        self.prompts.append((prompt, mark))

    def note_broken_route(self, raw: MarkedMap) -> None:
        """A route with an error: the hours, boxes and routes it names get no "unused" warning,
        and a goto to it gets no "leads nowhere"."""
        if isinstance(raw.get("name"), str):
            self.broken_routes.add(raw["name"])
        if isinstance(raw.get("hours"), str):
            self.used_hours.add(raw["hours"])
        menu = raw.get("menu")
        options = menu.get("options") if isinstance(menu, dict) else None
        branches = [raw.get(key) for key in ("no_answer", "busy", "unavailable", "closed", "then")]
        if isinstance(menu, dict):
            branches.append(menu.get("fallback"))
        if isinstance(options, dict):
            branches += [{"goto": v} if isinstance(v, str) else v for v in options.values()]
        for branch in branches:
            if not isinstance(branch, dict):
                continue
            box = branch.get("voicemail", branch.get("box"))
            if isinstance(box, str):
                self.used_mailboxes.add(box)
            route = branch.get("goto", branch.get("route"))
            if isinstance(route, str):
                self.reached_by_broken.add(route)

    # ---- whole-graph checks

    def finish(self, sounds_dir: Path | None) -> None:
        """Check the goto graph, unused sections and prompt files."""
        for name, node in self.nodes.items():
            for key, fallback in node.edges:
                where = fallback.mark or node.mark
                if fallback.action is FallbackAction.GOTO and fallback.route is not None:
                    if fallback.route in self.broken_routes:
                        pass  # its own error says what is wrong
                    elif fallback.route not in self.nodes:
                        hint = did_you_mean(fallback.route, self.nodes)
                        self.diags.error(
                            where,
                            f"{key}: goto '{fallback.route}' leads nowhere: no such route{hint}",
                        )
                    elif fallback.route == name and not node.waits:
                        self.diags.error(where, f"{key}: route '{name}' goes to itself forever")
                if fallback.action is FallbackAction.VOICEMAIL and fallback.mailbox is not None:
                    self.used_mailboxes.add(fallback.mailbox)
                    if (
                        fallback.mailbox not in self.config.mailboxes
                        and fallback.mailbox not in self.broken
                    ):
                        hint = did_you_mean(fallback.mailbox, self.config.mailboxes)
                        self.diags.error(
                            where,
                            f"{key}: voicemail box '{fallback.mailbox}' does not exist "
                            f"(define it under `mailboxes:`){hint}",
                        )
        self._loops()
        self._unreached()
        for name, mark in self.hours_marks.items():
            if name not in self.used_hours:
                self.diags.warning(mark, f"hours '{name}' are not used by any route")
        for name, mark in self.mailbox_marks.items():
            if name not in self.used_mailboxes:
                self.diags.warning(mark, f"mailbox '{name}' is not used by any route")
        if sounds_dir is not None:
            self._prompt_files(sounds_dir)

    def _successors(self, name: str) -> list[str]:
        return [
            f.route
            for _, f in self.nodes[name].edges
            if f.action is FallbackAction.GOTO and f.route in self.nodes
        ]

    def _loops(self) -> None:
        """A cycle of gotos through routes that never wait spins without end."""
        idle = {n for n, node in self.nodes.items() if not node.waits}
        reported: set[frozenset[str]] = set()
        for start in sorted(idle):
            stack: list[tuple[str, list[str]]] = [(start, [start])]
            while stack:
                here, path = stack.pop()
                for nxt in self._successors(here):
                    if nxt == start and len(path) > 1:
                        cycle = frozenset(path)
                        if cycle not in reported:
                            reported.add(cycle)
                            loop = " → ".join([*path, start])
                            self.diags.error(
                                self.nodes[start].mark,
                                f"goto loop with no step that waits: {loop} "
                                "(ring, greet or take a voicemail somewhere in it)",
                            )
                    elif nxt in idle and nxt not in path:
                        stack.append((nxt, [*path, nxt]))

    def _unreached(self) -> None:
        reached = {n for n, node in self.nodes.items() if node.entered}
        reached |= self.reached_by_broken & set(self.nodes)
        queue = list(reached)
        while queue:
            for nxt in self._successors(queue.pop()):
                if nxt not in reached:
                    reached.add(nxt)
                    queue.append(nxt)
        for name, node in self.nodes.items():
            if name not in reached:
                self.diags.error(
                    node.mark,
                    f"route '{name}' is never reached: it covers no number "
                    "(add `numbers:` or `block:`) and no goto leads to it",
                )

    def _prompt_files(self, sounds_dir: Path) -> None:
        seen: set[str] = set()
        for prompt, mark in self.prompts:
            if prompt in seen:
                continue
            seen.add(prompt)
            if not any((sounds_dir / f"{prompt}{ext}").is_file() for ext in SOUND_EXTENSIONS):
                self.diags.warning(
                    mark,
                    f"prompt '{prompt}' is not in the sounds folder {sounds_dir} "
                    f"(expected {prompt}.wav or another Asterisk format)",
                )


def _action(value: Any) -> ActionEntry | None:
    """A menu option written as an action; None when it is not one."""
    if not isinstance(value, dict):
        return None
    try:
        return ActionEntry.model_validate(value)
    except ValidationError:
        return None


def _looks_like_email(text: str) -> bool:
    local, at, domain = text.partition("@")
    return bool(local and at and "." in domain and not any(c.isspace() for c in text))
