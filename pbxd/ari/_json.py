"""Cheap, strict readers for ARI JSON fields, shared by models and events (the hot path).

Each reader takes `where` (e.g. "StasisStart.channel") only to build an error message that
says which field of which object is wrong; nothing is formatted unless parsing fails.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NoReturn

from pbxd.ari.errors import AriParseError

JsonObject = dict[str, Any]


def _wrong(where: str, key: str, expected: str, value: object) -> NoReturn:
    raise AriParseError(f"{where}.{key}: expected {expected}, got {type(value).__name__}")


def ensure_object(data: object, where: str) -> JsonObject:
    """`data` itself, checked to be a JSON object."""
    if type(data) is not dict:
        raise AriParseError(f"{where}: expected a JSON object, got {type(data).__name__}")
    return data


def _field(data: JsonObject, key: str, where: str) -> Any:
    try:
        return data[key]
    except KeyError:
        raise AriParseError(f"{where}: missing required field {key!r}") from None


def req_str(data: JsonObject, key: str, where: str) -> str:
    """A required string field."""
    value = _field(data, key, where)
    if type(value) is not str:
        _wrong(where, key, "a string", value)
    return value


def opt_str(data: JsonObject, key: str, where: str) -> str | None:
    """An optional string field; None when absent or null."""
    value = data.get(key)
    if value is not None and type(value) is not str:
        _wrong(where, key, "a string", value)
    return value


def str_or_empty(data: JsonObject, key: str, where: str) -> str:
    """An optional string field where absence means the empty string (as Asterisk prints it)."""
    value = data.get(key, "")
    if type(value) is not str:
        if value is None:
            return ""
        _wrong(where, key, "a string", value)
    return value


def req_int(data: JsonObject, key: str, where: str) -> int:
    """A required integer field (booleans refused)."""
    value = _field(data, key, where)
    if type(value) is not int:
        _wrong(where, key, "an integer", value)
    return value


def opt_int(data: JsonObject, key: str, where: str) -> int | None:
    """An optional integer field; None when absent or null."""
    value = data.get(key)
    if value is not None and type(value) is not int:
        _wrong(where, key, "an integer", value)
    return value


def opt_bool(data: JsonObject, key: str, where: str) -> bool:
    """An optional boolean field; False when absent (Asterisk omits false flags)."""
    value = data.get(key, False)
    if type(value) is not bool:
        _wrong(where, key, "a boolean", value)
    return value


def parse_date(value: object, where: str) -> datetime:
    """An Asterisk date such as `2026-11-23T19:02:21.212+0000`, as an aware datetime."""
    if type(value) is not str:
        raise AriParseError(f"{where}: expected a date string, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise AriParseError(f"{where}: invalid date {value!r}") from None
    if parsed.tzinfo is None:
        raise AriParseError(f"{where}: date {value!r} has no UTC offset")
    return parsed


def req_date(data: JsonObject, key: str, where: str) -> datetime:
    """A required date field."""
    return parse_date(_field(data, key, where), f"{where}.{key}")


def opt_date(data: JsonObject, key: str, where: str) -> datetime | None:
    """An optional date field; None when absent, null or empty."""
    value = data.get(key)
    if value is None or value == "":
        return None
    return parse_date(value, f"{where}.{key}")


def str_tuple(data: JsonObject, key: str, where: str) -> tuple[str, ...]:
    """A required list of strings, as a tuple (models are immutable)."""
    value = _field(data, key, where)
    if type(value) is not list:
        _wrong(where, key, "a list of strings", value)
    for item in value:
        if type(item) is not str:
            _wrong(where, key, "a list of strings", item)
    return tuple(value)


def req_object(data: JsonObject, key: str, where: str) -> JsonObject:
    """A required nested JSON object."""
    value = _field(data, key, where)
    if type(value) is not dict:
        _wrong(where, key, "an object", value)
    return value


def opt_object(data: JsonObject, key: str, where: str) -> JsonObject | None:
    """An optional nested JSON object; None when absent or null."""
    value = data.get(key)
    if value is not None and type(value) is not dict:
        _wrong(where, key, "an object", value)
    return value
