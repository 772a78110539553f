"""A Stasis application's event type filter, as res_stasis keeps it (app.c, Asterisk 13.26+).

`PUT /applications/{app}/eventFilter` sets it from the JSON body (the whole body is the
`filter` parameter): `{"allowed": [{"type": "StasisStart"}, ...], "disallowed": [...]}`.
Asterisk's rules (applications.json, app_event_filter_set):
- no body (or `{}`): both lists are emptied;
- a key present sets its list (an empty array empties it), a key absent leaves it alone;
- a body that is a bare array sets both lists to it;
- each list must be an array of objects with a non-empty string `type`, else 400 "Invalid
  format definition" (the allowed list is set before the disallowed one is checked);
- an event is sent when its type is in no disallowed entry and (allowed empty, or its type
  in an allowed entry): disallowed wins; an empty allowed list allows everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .model import JsonDict

_KEYS = ("allowed", "disallowed")


class FilterFormatError(ValueError):
    """The body is not a filter Asterisk accepts (it answers 400)."""


@dataclass
class EventFilter:
    """The two lists of one application, as given (each entry a `{"type": ...}` object)."""

    allowed: list[JsonDict] = field(default_factory=list)
    disallowed: list[JsonDict] = field(default_factory=list)

    def set_from(self, body: Any) -> None:
        """Apply a PUT's body; FilterFormatError (400) on a bad list, after what was applied."""
        for key in _KEYS:
            value = body
            if body is None or body == {}:  # no body, or no key at all: both emptied
                setattr(self, key, [])
                continue
            if isinstance(body, dict):
                if key not in body:
                    continue  # this list is left as it was
                value = body[key]  # a JSON null is no array: refused below
            if not isinstance(value, list) or not all(_has_type(entry) for entry in value):
                raise FilterFormatError("Invalid format definition")
            setattr(self, key, list(value))

    def allows(self, event_type: str) -> bool:
        """Whether an event of this type reaches the application."""
        if any(entry["type"] == event_type for entry in self.disallowed):
            return False
        return not self.allowed or any(entry["type"] == event_type for entry in self.allowed)

    @property
    def empty(self) -> bool:
        """No filtering at all (Asterisk's state before any PUT)."""
        return not self.allowed and not self.disallowed


def _has_type(entry: object) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get("type"), str) and bool(entry["type"])
