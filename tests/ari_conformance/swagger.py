"""A small validator for Asterisk's ARI Swagger 1.1 description (no jsonschema).

`Swagger.load()` reads the compact reference of Asterisk 22's api-docs the tests carry
(`data/ari-22.10.1.json`, made by `scripts/ari_reference.py`), or, when the `PBXD_ARI_DOCS`
environment variable names a directory, the raw `*.json` api-docs in it.

What `validate(value, type_name)` checks, returning readable problems such as
`"StasisStart.channel.state: 'Rung' not in ['Down', ...]"` (an empty list means valid):

- primitive types: `string`, `int`/`long` (an int, never a bool), `double`/`float` (int or
  float, never a bool), `boolean`, `object` (any JSON object), `Date` (Asterisk's
  `2026-11-23T19:02:21.212+0000`: milliseconds and a `+hhmm` offset), `containers` (an
  object whose values are strings), `List[X]`, `void` (no body at all);
- models by name (`Channel`, `Bridge`, ...): every required property present, no unknown
  property (strict on purpose: it catches typos in the simulator), each property of its
  declared type, `allowableValues` (`LIST`, and `RANGE` for completeness);
- Swagger 1.1 polymorphism: `subTypes` + `discriminator`. Validating against `Message` or
  `Event` picks the concrete model named by the `type` field; a concrete model inherits the
  properties (and required properties) of its ancestors, so an event must carry
  `type`, `application` and `timestamp`.

REST: `find_operation(method, path)` matches a concrete path (`/channels/17.1/dial`) to its
template (`/channels/{channelId}/dial`; literal segments win, so `/channels/create` is not
`/channels/{channelId}`), and `validate_response(method, path, status, body)` checks the body
against the operation's `responseClass` (`Channel`, `List[Bridge]`, `void` ...). Error answers
are outside the model (Swagger 1.1 `errorResponses` only carry a code and a reason); what
Asterisk 22 really sends is `{"message": "..."}` or, for some 500s, `{"error": "..."}`, and that
is what is checked for statuses >= 400, along with the 4xx code being one the operation declares.
`validate_request(method, path, params)` checks the query parameters a client sent.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from scripts.ari_reference import compact_api_docs

DOCS_ENV = "PBXD_ARI_DOCS"
DATA_DIR = Path(__file__).resolve().parent / "data"
REFERENCE = DATA_DIR / "ari-22.10.1.json"

_LIST_RE = re.compile(r"^List\[(?P<item>.+)\]$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{4}$")
_PRIMITIVES = frozenset(
    {"string", "int", "long", "double", "float", "boolean", "object", "Date", "containers"}
)
_ERROR_KEYS = frozenset({"message", "error"})


def docs_dir_from_environment() -> Path | None:
    """The raw api-docs directory `$PBXD_ARI_DOCS` names, if any."""
    env = os.environ.get(DOCS_ENV)
    return Path(env) if env else None


def parse_ari_date(text: str) -> datetime:
    """Parse Asterisk's timestamp format; raises ValueError if it is not exactly that."""
    if not _DATE_RE.match(text):
        raise ValueError(f"not an ARI date: {text!r}")
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _short(value: object) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class Parameter:
    name: str
    param_type: str  # path, query, body
    data_type: str
    required: bool
    allowable: Mapping[str, Any] | None


@dataclass(frozen=True)
class Operation:
    """One REST operation of the API description."""

    method: str
    template: str
    nickname: str
    response_class: str
    error_codes: frozenset[int]
    parameters: tuple[Parameter, ...]

    @cached_property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.template.strip("/").split("/"))

    def match(self, method: str, path: str) -> int | None:
        """The number of literal segments matched, or None if `path` is not this operation."""
        if method.upper() != self.method:
            return None
        parts = _split_path(path)
        if len(parts) != len(self.segments):
            return None
        literal = 0
        for seg, part in zip(self.segments, parts, strict=True):
            if seg.startswith("{") and seg.endswith("}"):
                if not part:
                    return None
            elif seg == part:
                literal += 1
            else:
                return None
        return literal


def _split_path(path: str) -> tuple[str, ...]:
    path = path.split("?", 1)[0]
    if path.startswith("/ari/") or path == "/ari":
        path = path[4:]
    return tuple(path.strip("/").split("/"))


class Swagger:
    """Every model and REST operation of the ARI description, and a validator for them."""

    def __init__(self, models: dict[str, dict[str, Any]], operations: list[Operation]) -> None:
        self.models = models
        self.operations = operations
        self.parent: dict[str, str] = {}
        for name, model in models.items():
            for sub in model.get("subTypes", []):
                self.parent[sub] = name

    @classmethod
    def load(cls, docs_dir: Path | str | None = None) -> Swagger:
        """Raw api-docs from `docs_dir` or `$PBXD_ARI_DOCS`, else the committed reference."""
        directory = Path(docs_dir) if docs_dir is not None else docs_dir_from_environment()
        if directory is not None:
            return cls.from_reference(compact_api_docs(directory))
        return cls.from_reference(json.loads(REFERENCE.read_text(encoding="utf-8")))

    @classmethod
    def from_reference(cls, reference: Mapping[str, Any]) -> Swagger:
        """From the compact form (`models`, and `operations` by path and method)."""
        operations = [
            _operation(method, template, op)
            for template, by_method in reference["operations"].items()
            for method, op in by_method.items()
        ]
        return cls(dict(reference["models"]), operations)

    # ----------------------------------------------------------------- models
    def ancestors(self, name: str) -> list[str]:
        """`name` and its ancestors, root first (Message, Event, StasisStart)."""
        chain = [name]
        while chain[-1] in self.parent:
            chain.append(self.parent[chain[-1]])
        return chain[::-1]

    def descendants(self, name: str) -> set[str]:
        found: set[str] = set()
        todo = list(self.models.get(name, {}).get("subTypes", []))
        while todo:
            sub = todo.pop()
            if sub not in found:
                found.add(sub)
                todo.extend(self.models.get(sub, {}).get("subTypes", []))
        return found

    def discriminator(self, name: str) -> str | None:
        for model_name in self.ancestors(name):
            disc = self.models.get(model_name, {}).get("discriminator")
            if disc:
                return str(disc)
        return None

    def properties(self, name: str) -> dict[str, dict[str, Any]]:
        """All properties of a model, inherited ones included."""
        props: dict[str, dict[str, Any]] = {}
        for model_name in self.ancestors(name):
            props.update(self.models[model_name].get("properties", {}))
        return props

    def is_known_type(self, type_name: str) -> bool:
        m = _LIST_RE.match(type_name)
        if m:
            return self.is_known_type(m.group("item"))
        return type_name in _PRIMITIVES or type_name in self.models or type_name == "void"

    # --------------------------------------------------------------- validate
    def validate(self, value: Any, type_name: str, path: str | None = None) -> list[str]:
        """Problems found validating `value` as `type_name` (`[]` when valid)."""
        problems: list[str] = []
        self._check(value, type_name, path or type_name, problems)
        return problems

    def validate_event(self, event: Any) -> list[str]:
        """A WebSocket message: validated as `Message`, i.e. as its concrete event model."""
        return self.validate(event, "Message")

    def _check(self, value: Any, type_name: str, path: str, problems: list[str]) -> None:
        m = _LIST_RE.match(type_name)
        if m:
            if not isinstance(value, list):
                problems.append(f"{path}: expected {type_name}, got {_describe(value)}")
                return
            for i, item in enumerate(value):
                self._check(item, m.group("item"), f"{path}[{i}]", problems)
            return
        if type_name == "void":
            if value is not None:
                problems.append(f"{path}: expected no body (void), got {_short(value)}")
            return
        if type_name in _PRIMITIVES:
            problem = _check_primitive(value, type_name)
            if problem:
                problems.append(f"{path}: {problem}")
            return
        if type_name not in self.models:
            problems.append(f"{path}: unknown type {type_name!r} in the API description")
            return
        self._check_model(value, type_name, path, problems)

    def _check_model(self, value: Any, name: str, path: str, problems: list[str]) -> None:
        if not isinstance(value, dict):
            problems.append(f"{path}: expected {name} object, got {_describe(value)}")
            return
        concrete = name
        disc = self.discriminator(name)
        subs = self.descendants(name)
        if disc is not None:
            tag = value.get(disc)
            if subs:
                leaves = sorted(s for s in subs if not self.models[s].get("subTypes"))
                if not isinstance(tag, str) or tag not in subs:
                    problems.append(
                        f"{path}: {disc} {_short(tag)} is not a known {name} subtype"
                        f" ({len(leaves)} known, e.g. {leaves[:3]})"
                    )
                    return
                if tag not in leaves:
                    problems.append(f"{path}: {disc} {tag!r} is abstract")
                    return
                concrete = tag
                # The root name of the problem path is the concrete type: StasisStart.channel
                if path == name:
                    path = concrete
            elif tag != name:
                problems.append(f"{path}.{disc}: expected {name!r}, got {_short(tag)}")
        props = self.properties(concrete)
        for prop, spec in props.items():
            if spec.get("required") is True and prop not in value:
                problems.append(f"{path}: missing required property {prop!r}")
        for key in value:
            if key not in props:
                problems.append(f"{path}: unknown property {key!r}")
        for key, item in value.items():
            if key not in props:
                continue
            spec = props[key]
            sub_path = f"{path}.{key}"
            before = len(problems)
            self._check(item, spec["type"], sub_path, problems)
            if len(problems) == before and "allowableValues" in spec:
                problem = _check_allowable(item, spec["allowableValues"])
                if problem:
                    problems.append(f"{sub_path}: {problem}")

    # ------------------------------------------------------------------- REST
    def find_operation(self, method: str, path: str) -> Operation | None:
        """The operation a concrete request path belongs to (most literal segments win)."""
        best: tuple[int, Operation] | None = None
        for op in self.operations:
            score = op.match(method, path)
            if score is not None and (best is None or score > best[0]):
                best = (score, op)
        return best[1] if best else None

    def response_class(self, method: str, path: str) -> str | None:
        op = self.find_operation(method, path)
        return op.response_class if op else None

    def validate_response(self, method: str, path: str, status: int, body: Any) -> list[str]:
        """Problems with a REST answer (`status`, JSON `body` or None) to `method path`."""
        op = self.find_operation(method, path)
        where = f"{method.upper()} {path}"
        if op is None:
            return [f"{where}: no such operation in the API description"]
        root = f"{where} -> {status}"
        if 200 <= status < 300:
            if op.response_class == "void":
                problems = []
                if status != 204:
                    problems.append(f"{root}: a void operation answers 204, got {status}")
                if body is not None:
                    problems.append(f"{root}: expected no body (void), got {_short(body)}")
                return problems
            if op.response_class == "binary":
                return []
            if status == 204 or body is None:
                return [f"{root}: expected a {op.response_class} body, got none"]
            return self.validate(body, op.response_class, f"{root} {op.response_class}")
        if status >= 400:
            problems = _check_error_body(body, root)
            if status < 500 and status not in op.error_codes:
                problems.append(
                    f"{root}: status {status} is not declared by {op.nickname}"
                    f" (declares {sorted(op.error_codes)})"
                )
            return problems
        return [f"{root}: unexpected status {status}"]

    def validate_request(self, method: str, path: str, params: Mapping[str, Any]) -> list[str]:
        """Problems with the query parameters a client sent to `method path`."""
        op = self.find_operation(method, path)
        where = f"{method.upper()} {path}"
        if op is None:
            return [f"{where}: no such operation in the API description"]
        problems: list[str] = []
        known = {p.name: p for p in op.parameters}
        for p in op.parameters:
            if p.param_type == "query" and p.required and p.name not in params:
                problems.append(f"{where}: missing required parameter {p.name!r}")
        for name, raw in params.items():
            spec = known.get(name)
            if spec is None or spec.param_type == "path":
                problems.append(f"{where}: unknown parameter {name!r}")
                continue
            if spec.param_type != "query":
                continue
            problem = _check_query_value(raw, spec)
            if problem:
                problems.append(f"{where}: parameter {name}: {problem}")
        return problems


def _operation(method: str, template: str, op: Mapping[str, Any]) -> Operation:
    params = tuple(
        Parameter(
            name=p["name"],
            param_type=p.get("paramType", "query"),
            data_type=p.get("dataType", "string"),
            required=bool(p.get("required", False)),
            allowable=p.get("allowableValues"),
        )
        for p in op.get("parameters", [])
    )
    return Operation(
        method=method,
        template=template,
        nickname=str(op.get("nickname", "")),
        response_class=str(op.get("responseClass", "void")),
        error_codes=frozenset(op.get("errorCodes", [])),
        parameters=params,
    )


def _check_primitive(value: Any, type_name: str) -> str | None:
    got = _describe(value)
    if type_name == "string":
        ok = isinstance(value, str)
    elif type_name in ("int", "long"):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif type_name in ("double", "float"):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif type_name == "boolean":
        ok = isinstance(value, bool)
    elif type_name == "object":
        ok = isinstance(value, dict)
    elif type_name == "containers":
        if not isinstance(value, dict):
            return f"expected containers (object of strings), got {got}"
        bad = sorted(k for k, v in value.items() if not isinstance(v, str))
        return f"containers values must be strings: {bad}" if bad else None
    elif type_name == "Date":
        if not isinstance(value, str):
            return f"expected Date, got {got}"
        try:
            parse_ari_date(value)
        except ValueError:
            return f"{value!r} is not an ARI Date (like 2026-11-23T19:02:21.212+0000)"
        return None
    else:  # pragma: no cover - _PRIMITIVES and this chain are kept in step
        return f"unsupported primitive {type_name}"
    return None if ok else f"expected {type_name}, got {got} {_short(value)}"


def _check_allowable(value: Any, allowable: Mapping[str, Any]) -> str | None:
    kind = str(allowable.get("valueType", "")).upper()
    if kind == "LIST":
        values = list(allowable.get("values", []))
        return None if value in values else f"{_short(value)} not in {values}"
    if kind == "RANGE":
        if not isinstance(value, int | float) or isinstance(value, bool):
            return f"{_short(value)} is not a number for a RANGE"
        low, high = allowable.get("min"), allowable.get("max")
        if low is not None and value < low:
            return f"{value} < min {low}"
        if high is not None and value > high:
            return f"{value} > max {high}"
    return None


def _check_query_value(raw: Any, spec: Parameter) -> str | None:
    text = str(raw)
    values: Iterable[str] = text.split(",") if spec.data_type.startswith("List[") else [text]
    base = _LIST_RE.match(spec.data_type)
    data_type = base.group("item") if base else spec.data_type
    for item in values:
        parsed: Any = item
        if data_type in ("int", "long"):
            try:
                parsed = int(item)
            except ValueError:
                return f"{item!r} is not an integer"
        elif data_type == "boolean" and item not in ("true", "false"):
            return f"{item!r} is not a boolean"
        if spec.allowable:
            problem = _check_allowable(parsed, spec.allowable)
            if problem:
                return problem
    return None


def _check_error_body(body: Any, root: str) -> list[str]:
    if not isinstance(body, dict):
        return [f"{root}: an error body is an object, got {_describe(body)}"]
    keys = set(body)
    if len(keys) != 1 or not keys <= _ERROR_KEYS:
        return [f"{root}: an error body is {{'message': str}} or {{'error': str}}, got {keys}"]
    (text,) = body.values()
    if not isinstance(text, str) or not text:
        return [f"{root}: error text must be a non-empty string, got {_short(text)}"]
    return []


# Answers from the HTTP layer, before any ARI resource runs: no operation declares them.
HTTP_LAYER_STATUSES = frozenset({401, 405})


def validate_run(
    swagger: Swagger,
    rest_log: Iterable[Mapping[str, Any]],
    event_log: Iterable[Mapping[str, Any]],
    *,
    requests: bool = True,
) -> list[str]:
    """Every event and REST answer of a run (capture-format records), and with `requests` the
    query parameters the client sent: problems prefixed by where they were found."""
    problems: list[str] = []
    for i, entry in enumerate(event_log):
        where = f"event #{i} ({entry['data'].get('type')})"
        problems += [f"{where}: {p}" for p in swagger.validate_event(entry["data"])]
    for i, entry in enumerate(rest_log):
        method, path, status = str(entry["method"]), str(entry["path"]), int(entry["status"])
        if status in HTTP_LAYER_STATUSES:
            continue
        where = f"REST #{i}"
        found = swagger.validate_response(method, path, status, entry["body"])
        if requests:
            found += swagger.validate_request(method, path, entry.get("params") or {})
        problems += [f"{where}: {p}" for p in found]
    return problems
