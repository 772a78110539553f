"""`pbxd diagnose NUMBER`: is it ours, in service, routed; who rings now; the last failures.

The facts and the verdict are `pbxd.diagnose`'s, the same as `/api/numbers/{n}/diagnose`.
Presence is asked live: first the running daemon (its HTTP API, with an API token), whose
presence table follows Asterisk's endpoint events; else Asterisk's ARI directly, with
pbxd.yaml's credentials. When neither answers, the output says so and guesses nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import aiohttp

from pbxd.ari.client import AriClient
from pbxd.calls.presence import endpoint_key
from pbxd.cdr.memory import RingMemory
from pbxd.cdr.store import CdrStore
from pbxd.cli.common import cdr_database, read_request, read_store, report, resolve_number
from pbxd.config.model import Config
from pbxd.diagnose import (
    FAILED_CALLS_SHOWN,
    OFFLINE,
    Diagnosis,
    Presence,
    diagnose,
    diagnosis_json,
    examine,
    format_text,
    rings_somebody,
)
from pbxd.log import redact_url

TOKEN_ENV = "PBXD_TOKEN"
ASK_TIMEOUT = 3.0  # seconds for each of the daemon and ARI: support is waiting


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `pbxd diagnose`."""
    parser = sub.add_parser(
        "diagnose",
        help="why a number does not ring: inventory, route now, presence, last failed calls",
        description="Answers support's checklist for NUMBER: in the inventory? status "
        "(active; porting with its date; reserved)? where a call arriving now goes? is each "
        "target's softphone online (asked of the running daemon, else of Asterisk's ARI)? "
        "the last failed calls with local date, time and zone and every leg's cause; and a "
        "verdict line. Exit 0 when the number rings somebody now, 3 when the verdict is that "
        "it does not, 1 on bad input, 2 when the database fails.",
    )
    parser.add_argument("number", nargs="+", help="the number; spaces allowed (01 70 00 00 01)")
    parser.add_argument("--json", action="store_true", help="print JSON (the API's answer)")
    parser.add_argument(
        "--failed", type=int, default=FAILED_CALLS_SHOWN, help="failed calls shown (default 3)"
    )
    parser.add_argument(
        "--daemon", help="the daemon's HTTP address (default: http://<pbxd.yaml http.bind>)"
    )
    parser.add_argument("--token", help=f"API token for the daemon (default: ${TOKEN_ENV})")
    parser.add_argument(
        "--at",
        help="judge hours and failed calls as of this instant (2026-11-23T09:30+01:00; "
        "default: now); presence is always asked live",
    )
    parser.add_argument("--database", help="CDR database URL (default: pbxd.yaml's)")
    parser.set_defaults(func=run)


def daemon_url(config: Config, given: str | None) -> str:
    """The daemon's base URL: --daemon, else http.bind (a wildcard bind is asked locally)."""
    if given:
        return given.rstrip("/")
    host, _, port = config.settings.http_bind.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


@dataclass(frozen=True, slots=True)
class Asked:
    """One source's answer: states, or why it gave none."""

    states: dict[str, str] | None
    source: str
    error: str | None = None


async def ask_daemon(base: str, did: str, token: str | None) -> Asked:
    """The daemon's live presence, through its diagnose endpoint."""
    where = f"the daemon at {base}"
    if not token:
        why = f"daemon at {base} not asked: no API token (--token or ${TOKEN_ENV})"
        return Asked(None, where, why)
    url = f"{base}/api/numbers/{quote(did)}/diagnose"
    timeout = aiohttp.ClientTimeout(total=ASK_TIMEOUT)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, headers={"Authorization": f"Bearer {token}"}) as response,
        ):
            if response.status != 200:
                return Asked(None, where, f"daemon at {base} answered HTTP {response.status}")
            body: Any = await response.json()
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        why = str(exc) or type(exc).__name__
        return Asked(None, where, f"daemon not reachable at {base} ({why})")
    states = body.get("endpoints_online") if isinstance(body, dict) else None
    if isinstance(states, dict):
        return Asked({str(k): str(v) for k, v in states.items()}, where)
    said = body.get("presence_error") if isinstance(body, dict) else None
    return Asked(None, where, f"daemon at {base}: {said or 'no presence in its answer'}")


async def ask_ari(config: Config, softphones: list[str]) -> Asked:
    """Endpoint states straight from Asterisk's ARI (`GET /endpoints`)."""
    settings = config.settings
    base = redact_url(settings.ari_url)
    where = f"Asterisk's ARI at {base}"
    try:
        password = settings.ari_password()
    except LookupError:
        return Asked(None, where, f"ARI at {base} not asked: no ARI password configured")
    try:
        async with AriClient(
            settings.ari_url, settings.ari_username, password, settings.ari_app, timeout=ASK_TIMEOUT
        ) as client:
            endpoints = await client.list_endpoints()
    except Exception as exc:  # unreachable, refused, a 401: all mean "not known"
        return Asked(None, where, f"ARI not reachable at {base} ({type(exc).__name__}: {exc})")
    states = {endpoint_key(e.technology, e.resource): e.state or "unknown" for e in endpoints}
    for endpoint in softphones:
        states.setdefault(endpoint, OFFLINE)  # not on Asterisk at all: it cannot register
    return Asked(states, where)


async def ask_presence(
    config: Config, did: str, base: str, token: str | None, softphones: list[str]
) -> Presence:
    """The daemon first, ARI next; when neither answers, a Presence saying so."""
    asked = await ask_daemon(base, did, token)
    if asked.states is None:
        tried = asked.error or asked.source
        asked = await ask_ari(config, softphones)  # only when the daemon gave no answer
        if asked.states is None:
            return Presence.unknown(f"can't ask: {tried}; {asked.error or asked.source}")
    return Presence(asked.states, asked.source)


def softphones_of(config: Config, did: str) -> list[str]:
    """The endpoints of the number's route's softphone targets."""
    route = config.route_for(did)
    targets = route.targets if route else ()
    return sorted({rt.target.endpoint for rt in targets if rt.target.endpoint})


def instant(text: str) -> datetime:
    """An --at value: an ISO date and time with its offset (a naive one is refused)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--at {text!r} is not a date and time (2026-11-23T09:30+01:00)") from None
    if moment.utcoffset() is None:
        raise ValueError(f"--at {text!r} needs its offset (+01:00, or Z for UTC)")
    return moment.astimezone(UTC)


def read_diagnose_args(args: argparse.Namespace, config: Config) -> tuple[str, datetime]:
    """NUMBER (E.164) and the instant to judge at; ValueError says what is wrong."""
    did, _ = resolve_number(" ".join(args.number), config)
    if not 1 <= args.failed <= 100:
        raise ValueError("--failed takes 1 to 100")
    return did, instant(args.at) if args.at else datetime.now(UTC)


def run(args: argparse.Namespace) -> int:
    """Print the diagnosis; exit 0 if somebody rings now, 3 if not, 1 bad input, 2 database."""
    opened = read_request(args, "diagnose", lambda config: read_diagnose_args(args, config))
    if isinstance(opened, int):
        return opened
    config, (did, now) = opened
    if config.number(did) is None:
        show(examine(config, did, now, [], Presence.unknown("not asked"), set()), args.json)
        return 1
    url = cdr_database(args, "diagnose", config)
    if isinstance(url, int):
        return url
    token = args.token or os.environ.get(TOKEN_ENV)
    base = daemon_url(config, args.daemon)

    async def gather(store: CdrStore) -> Diagnosis:
        presence = await ask_presence(config, did, base, token, softphones_of(config, did))
        dnd = set(await RingMemory(store.engine).dnd())  # the flags the daemon keeps
        engine = store.engine
        return await diagnose(config, engine, did, now, presence, dnd, failed_calls=args.failed)

    try:
        found = asyncio.run(read_store(url, gather))
    except Exception as exc:
        report("diagnose", f"cannot read the call log from {url}: {type(exc).__name__}: {exc}")
        return 2
    show(found, args.json)
    return 0 if rings_somebody(found.facts) else 3


def show(found: Diagnosis, as_json: bool) -> None:
    """Print the diagnosis as JSON or as the checklist."""
    if as_json:
        print(json.dumps(diagnosis_json(found), indent=2, ensure_ascii=False))
    else:
        print(format_text(found), end="")
