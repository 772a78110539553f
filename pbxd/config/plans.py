"""Routing files' `plans:`: what the numbers and blocks a plan names may use.

A plan is checked against the inventory (each number or block it names exists, and has one
plan at most) and the flow sections (the mailbox or route it overflows to exists). Once every
route is known, a route whose number has a plan is refused when it forwards to more distinct
destinations (external numbers, which cost the number's owner money) than the plan allows.
"""

from __future__ import annotations

from typing import Any

from pbxd.config import numbering
from pbxd.config.callout import NOTHING_BROKEN, Broken
from pbxd.config.diagnostics import Diagnostics, Mark, did_you_mean
from pbxd.config.files import FallbackAction, HangupReason, PlanEntry, WhenCrossed
from pbxd.config.flows import RouteFlows
from pbxd.config.model import Config, Plan, Route
from pbxd.config.yamlsource import locate

MAX_WARN_BEFORE = 600
MAX_MONTHLY_MINUTES = 31 * 24 * 60


def compile_plan(
    name: str,
    raw: Any,
    entry: PlanEntry,
    key_mark: Mark,
    country: str | None,
    config: Config,
    flows: RouteFlows,
    diags: Diagnostics,
    broken: Broken = NOTHING_BROKEN,
) -> Plan | None:
    """One `plans:` entry, assigned to its numbers; None (errors reported) when unusable."""

    def where(path: list[str | int]) -> Mark:
        return locate(raw, path, key_mark)[0]

    if name in config.plans:
        diags.error(
            key_mark, f"plan '{name}' is defined twice (first at {config.plans[name].source})"
        )
        return None
    ok = True
    for key in ("forwarded_minutes", "outbound_minutes"):
        value = getattr(entry, key)
        if value is not None and not 0 <= value <= MAX_MONTHLY_MINUTES:
            diags.error(where([key]), f"{key} must be between 0 and {MAX_MONTHLY_MINUTES}")
            ok = False
    for key in ("max_destinations", "max_calls"):
        value = getattr(entry, key)
        if value is not None and value < 1:
            diags.error(where([key]), f"{key} must be at least 1 (leave it out: no limit)")
            ok = False
    if not 0 <= entry.warn_before <= MAX_WARN_BEFORE:
        diags.error(where(["warn_before"]), f"warn_before must be 0 to {MAX_WARN_BEFORE} seconds")
        ok = False
    at_limit = flows.fallback("at_limit", entry.at_limit, where(["at_limit"]), HangupReason.BUSY)
    if at_limit.action is FallbackAction.VOICEMAIL and at_limit.mailbox is not None:
        flows.used_mailboxes.add(at_limit.mailbox)
    for index, prompt in enumerate(entry.warning):
        flows.prompt(prompt, where(["warning", index]))
    numbers: list[tuple[str, Mark]] = []
    region = country.upper() if country else None
    for index, text in enumerate(entry.numbers):
        try:
            e164 = numbering.to_e164(str(text), region)
        except numbering.NumberError as exc:
            diags.error(where(["numbers", index]), str(exc))
            ok = False
            continue
        if e164 not in config.numbers:
            if not broken.number(e164):
                diags.error(where(["numbers", index]), f"{e164} is not one of our numbers")
            ok = False
            continue
        numbers.append((e164, where(["numbers", index])))
    for index, block in enumerate(entry.blocks):
        if block not in config.blocks and (broken.inventory or block in broken.blocks):
            ok = False
            continue
        if block not in config.blocks:
            hint = did_you_mean(block, config.blocks)
            diags.error(where(["blocks", index]), f"unknown block '{block}'{hint}")
            ok = False
            continue
        mark = where(["blocks", index])
        numbers += [(n, mark) for n, v in config.numbers.items() if v.block == block]
    if not ok:
        return None
    plan = Plan(
        name=name,
        forwarded_minutes=entry.forwarded_minutes,
        outbound_minutes=entry.outbound_minutes,
        max_destinations=entry.max_destinations,
        max_calls=entry.max_calls,
        at_limit=at_limit,
        finish=entry.when_crossed is WhenCrossed.FINISH,
        warn_before=entry.warn_before,
        warning=tuple(f"sound:{p}" for p in entry.warning),
        source=key_mark,
    )
    config.plans[name] = plan
    for e164, mark in numbers:
        other = config.plan_of_number.get(e164)
        if other is not None and other.name != name:
            diags.error(mark, f"number {e164} already has plan '{other.name}' ({other.source})")
            continue
        config.plan_of_number[e164] = plan
    return plan


def destinations_of(route: Route) -> list[str]:
    """The distinct numbers a route forwards to (external targets), in ring order."""
    return list(dict.fromkeys(r.target.number for r in route.targets if r.target.number))


def check_plans(config: Config, diags: Diagnostics) -> None:
    """Refuse routes forwarding to more destinations than their numbers' plan allows; and an
    overflow to a mailbox or route that does not exist."""
    for defined in config.plans.values():
        fallback = defined.at_limit
        where = fallback.mark or defined.source
        assert where is not None
        if fallback.action is FallbackAction.VOICEMAIL and fallback.mailbox not in config.mailboxes:
            hint = did_you_mean(fallback.mailbox or "", config.mailboxes)
            diags.error(where, f"at_limit: no mailbox '{fallback.mailbox}'{hint}")
        if fallback.action is FallbackAction.GOTO and fallback.route not in config.routes:
            hint = did_you_mean(fallback.route or "", config.routes)
            diags.error(
                where, f"at_limit: goto '{fallback.route}' leads nowhere: no such route{hint}"
            )
    seen: set[tuple[str, str]] = set()
    for e164, route in config.route_of_number.items():
        plan = config.plan_of_number.get(e164)
        if plan is None or plan.max_destinations is None or (route.name, plan.name) in seen:
            continue
        seen.add((route.name, plan.name))
        used = destinations_of(route)
        if len(used) > plan.max_destinations:
            diags.error(
                route.source,
                f"route '{route.name}' forwards to {len(used)} destinations "
                f"({', '.join(used)}) but plan '{plan.name}' of {e164} allows "
                f"{plan.max_destinations}",
            )
