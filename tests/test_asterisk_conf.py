"""The shipped Asterisk configuration and systemd unit keep the invariants pbxd relies on."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "asterisk-conf"
UNIT = ROOT / "systemd" / "pbxd.service"


# ------------------------------------------------------------------ a small parser


@dataclass
class Section:
    """One `[name](options)` block; entries keep order and duplicates (`exten`, `match`)."""

    name: str
    options: tuple[str, ...] = ()
    entries: list[tuple[str, str]] = field(default_factory=list)

    def get(self, key: str) -> str | None:
        """The last value of `key` (Asterisk: later wins for scalar options)."""
        values = self.all(key)
        return values[-1] if values else None

    def all(self, key: str) -> list[str]:
        """Every value of `key`, in order."""
        return [v for k, v in self.entries if k == key]


def _strip_comment(line: str) -> str:
    """Drop a `;` comment (Asterisk escapes a literal semicolon as `\\;`)."""
    out: list[str] = []
    i = 0
    while i < len(line):
        if line[i] == "\\" and i + 1 < len(line) and line[i + 1] == ";":
            out.append(";")
            i += 2
            continue
        if line[i] == ";":
            break
        out.append(line[i])
        i += 1
    return "".join(out).strip()


_SECTION = re.compile(r"^\[(?P<name>[^\]]+)\](?:\((?P<options>[^)]*)\))?$")
_ENTRY = re.compile(r"^(?P<key>[^=]+?)\s*=>?\s*(?P<value>.*)$")


def parse_asterisk(text: str) -> list[Section]:
    """Parse Asterisk's INI dialect: sections, `key = value`, `key => value`, `;` comments.

    Block comments (`;-- ... --;`) are skipped, `#include`/`#exec` lines ignored. Sections
    may repeat (pjsip: endpoint, auth and aor all named `alice`), so a list is returned.
    """
    sections: list[Section] = []
    in_block = False
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if in_block:
            if "--;" in line:
                in_block = False
            continue
        if line.startswith(";--"):
            in_block = "--;" not in line[3:]
            continue
        line = _strip_comment(line)
        if not line or line.startswith("#"):
            continue
        if m := _SECTION.match(line):
            options = tuple(o.strip() for o in (m["options"] or "").split(",") if o.strip())
            sections.append(Section(m["name"].strip(), options))
            continue
        m = _ENTRY.match(line)
        if m is None or not sections:
            raise ValueError(f"line {lineno}: cannot parse {raw!r}")
        sections[-1].entries.append((m["key"].strip(), m["value"].strip()))
    return sections


def load(name: str) -> list[Section]:
    """Parse one file of asterisk-conf/."""
    return parse_asterisk((CONF_DIR / name).read_text(encoding="utf-8"))


def section(sections: list[Section], name: str, type_: str | None = None) -> Section:
    """The one section called `name` (and of pjsip `type=type_` when given)."""
    found = [s for s in sections if s.name == name and (type_ is None or s.get("type") == type_)]
    assert len(found) == 1, f"expected one [{name}] (type={type_}), found {len(found)}"
    return found[0]


@dataclass(frozen=True)
class Step:
    """One dialplan priority: `exten => pattern,1,App(args)` or `same => n(label),App(args)`."""

    pattern: str
    label: str | None
    app: str
    args: str


_PRIORITY = r"(?P<prio>[^,(]+)(?:\((?P<label>[^)]*)\))?,(?P<cmd>.*)$"
_EXTEN = re.compile(r"^(?P<pattern>[^,]+)," + _PRIORITY)
_SAME = re.compile(r"^" + _PRIORITY)
_APP = re.compile(r"^(?P<app>\w+)(?:\((?P<args>.*)\))?$")


def dialplan(ctx: Section) -> dict[str, list[Step]]:
    """Extensions of a context, each as its ordered list of steps."""
    extensions: dict[str, list[Step]] = {}
    current: str | None = None
    for key, value in ctx.entries:
        if key not in ("exten", "same"):
            continue
        m = (_EXTEN if key == "exten" else _SAME).match(value)
        assert m is not None, f"bad dialplan line {key} => {value}"
        if key == "exten":
            current = m["pattern"]
            assert current is not None
            extensions.setdefault(current, [])
        assert current is not None, "`same =>` before any `exten =>`"
        app = _APP.match(m["cmd"].strip())
        assert app is not None, f"bad application in {value!r}"
        extensions[current].append(Step(current, m["label"], app["app"], app["args"] or ""))
    return extensions


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """systemd unit: sections of keys, each with all its values (keys may repeat)."""
    unit: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = unit.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        assert sep and current is not None, f"cannot parse unit line {raw!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return unit


# --------------------------------------------------------------- the parser itself


def test_parser_handles_asterisk_syntax() -> None:
    text = """
    ; comment
    [general]
    enabled = yes ; trailing comment
    [tpl](!)
    allow = ulaw
    [alice](tpl,+)
    note = semi\\;colon
    ;-- a block
    comment --;
    #include other.conf
    exten => _X.,1,Stasis(pbxd)
     same => n(done),Hangup()
    """
    sections = parse_asterisk(text)
    assert [s.name for s in sections] == ["general", "tpl", "alice"]
    assert sections[0].get("enabled") == "yes"
    assert sections[1].options == ("!",)
    assert sections[2].options == ("tpl", "+")
    assert sections[2].get("note") == "semi;colon"
    steps = dialplan(sections[2])["_X."]
    assert [(s.app, s.args, s.label) for s in steps] == [
        ("Stasis", "pbxd", None),
        ("Hangup", "", "done"),
    ]
    with pytest.raises(ValueError):
        parse_asterisk("[x]\nno equals sign here\n")


# ------------------------------------------------------------------ the invariants


def test_http_is_enabled_on_loopback_only() -> None:
    general = section(load("http.conf"), "general")
    assert general.get("enabled") == "yes"
    bindaddr = general.get("bindaddr")
    assert bindaddr is not None and ipaddress.ip_address(bindaddr).is_loopback
    assert general.get("bindport") == "8088"


def test_ari_is_enabled_with_user_pbxd() -> None:
    sections = load("ari.conf")
    general = section(sections, "general")
    assert general.get("enabled") == "yes"
    assert general.get("pretty") == "no"
    user = section(sections, "pbxd")
    assert user.get("type") == "user"
    assert user.get("read_only") == "no"
    assert user.get("password")  # a placeholder an admin must replace
    assert "CHANGE-ME" in (user.get("password") or "")


@pytest.mark.parametrize("pattern", ["_+X.", "_X."])
def test_from_trunk_goes_to_stasis_pbxd_with_a_fallback(pattern: str) -> None:
    ctx = section(load("extensions.conf"), "from-trunk")
    steps = dialplan(ctx)[pattern]
    apps = [s.app for s in steps]
    assert "Stasis" in apps
    stasis = apps.index("Stasis")
    # The caller's presentation rides along: ARI's Channel model has none (CLIR); and
    # `ringing` says the caller was sent 180 just before (pbxd then saves its ring request).
    assert steps[stasis].args == "pbxd,${CALLERID(pres)},ringing"
    assert steps[stasis - 1].app == "Ringing" and steps[stasis - 1].args == ""
    after = steps[stasis + 1 :]
    # The status is checked right after, and callers get a clean failure when pbxd is away.
    assert after[0].app == "GotoIf" and "STASISSTATUS" in after[0].args
    fallback = {s.app for s in after}
    assert fallback & {"Congestion", "Busy", "Playback"}
    assert after[-1].app == "Hangup"
    # Nothing in the fallback answers the call (the caller is not billed for it).
    assert "Answer" not in fallback


def test_from_internal_cannot_reach_the_carrier() -> None:
    ctx = section(load("extensions.conf"), "from-internal")
    for steps in dialplan(ctx).values():
        for step in steps:
            assert "trunk" not in step.args, f"{step} dials out from a softphone context"


def test_pjsip_endpoints_pbxd_relies_on() -> None:
    sections = load("pjsip.conf")
    transport = section(sections, "transport-udp", "transport")
    assert transport.get("protocol") == "udp"
    assert (transport.get("bind") or "").endswith(":5060")

    trunk_in = section(sections, "trunk-in", "endpoint")
    assert trunk_in.get("context") == "from-trunk"
    identify = [s for s in sections if s.get("type") == "identify"]
    assert [s.get("endpoint") for s in identify] == ["trunk-in"]
    networks = [ipaddress.ip_network(m) for m in identify[0].all("match")]
    assert ipaddress.ip_network("192.0.2.0/24") in networks

    trunk_out = section(sections, "trunk-out", "endpoint")
    assert trunk_out.get("trust_id_outbound") == "yes"
    for trunk in (trunk_in, trunk_out):
        assert trunk.get("send_connected_line") == "no"
        assert trunk.get("disallow") == "all"
        assert trunk.get("allow") == "ulaw,alaw"
    assert section(sections, "trunk-out", "aor").get("contact")

    for user in ("alice", "bob"):
        endpoint = section(sections, user, "endpoint")
        assert endpoint.get("context") == "from-internal"
        assert endpoint.get("auth") == user and endpoint.get("aors") == user
        assert section(sections, user, "auth").get("password")
        aor = section(sections, user, "aor")
        assert int(aor.get("max_contacts") or 0) >= 1
        assert int(aor.get("qualify_frequency") or 0) > 0  # offline phones get detected


def test_every_conf_file_explains_itself() -> None:
    for path in CONF_DIR.glob("*.conf"):
        text = path.read_text(encoding="utf-8")
        comments = [line for line in text.splitlines() if line.lstrip().startswith(";")]
        assert len(comments) >= 5, f"{path.name} needs comments for the admin"


def test_systemd_unit() -> None:
    unit = parse_unit(UNIT.read_text(encoding="utf-8"))
    service, section_unit = unit["Service"], unit["Unit"]
    assert service["User"] == ["pbxd"] and service["Group"] == ["pbxd"]
    after = " ".join(section_unit["After"]).split()
    assert "asterisk.service" in after and "network-online.target" in after
    assert service["Restart"] == ["on-failure"]
    [exec_start] = service["ExecStart"]
    argv = exec_start.split()
    assert argv[0].startswith("/") and argv[0].endswith("/pbxd")
    assert argv[1:] == ["run", "--config", "/etc/pbxd/pbxd.yaml"]
    assert service["KillSignal"] == ["SIGTERM"]
    assert service["StateDirectory"] == ["pbxd"]
    assert service["EnvironmentFile"] == ["-/etc/pbxd/pbxd.env"]
    for hardening in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert service[hardening] == ["yes"]
    assert service["ProtectSystem"] == ["strict"]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


# ------------------------------------------------------- agreement with pbxd's side


def _run_fallback(steps: list[Step], start: int, stasis_status: str) -> list[str]:
    """The applications Asterisk runs from `steps[start]` on, given STASISSTATUS."""
    labels = {s.label: i for i, s in enumerate(steps) if s.label}
    ran: list[str] = []
    i = start
    while i < len(steps) and len(ran) < 50:
        step = steps[i]
        ran.append(step.app)
        if step.app == "GotoIf":
            condition, _, target = step.args.partition("?")
            assert condition == '$["${STASISSTATUS}" = "SUCCESS"]', step.args
            then, _, otherwise = target.partition(":")
            jump = then if stasis_status == "SUCCESS" else otherwise
            if jump:
                assert jump in labels, f"GotoIf to unknown label {jump!r}"
                i = labels[jump]
                continue
        if step.app in ("Hangup", "Congestion", "Busy"):
            break
        i += 1
    return ran


@pytest.mark.parametrize("pattern", ["_+X.", "_X."])
def test_every_way_out_of_stasis_reaches_the_right_place(pattern: str) -> None:
    from pbxd.calls.daemon import FALLBACK_LABEL

    steps = dialplan(section(load("extensions.conf"), "from-trunk"))[pattern]
    stasis = [s.app for s in steps].index("Stasis")
    # pbxd not connected: Stasis() returns at once with STASISSTATUS=FAILED.
    assert _run_fallback(steps, stasis + 1, "FAILED")[-2:] == ["Playback", "Congestion"]
    # pbxd handled the call and let it go: nothing more for the caller.
    assert _run_fallback(steps, stasis + 1, "SUCCESS") == ["GotoIf", "Hangup"]
    # pbxd gave up on the call: POST /channels/{id}/continue?label=unavailable (same
    # context and extension) lands after the status check, with STASISSTATUS=SUCCESS.
    labelled = [i for i, s in enumerate(steps) if s.label == FALLBACK_LABEL]
    assert len(labelled) == 1, f"{pattern} lacks the label {FALLBACK_LABEL!r} pbxd continues to"
    assert labelled[0] > stasis + 1
    assert _run_fallback(steps, labelled[0], "SUCCESS")[-2:] == ["Playback", "Congestion"]


def test_names_agree_with_the_shipped_pbxd_configuration() -> None:
    from pbxd.config.compile import compile_config

    result = compile_config(ROOT / "pbxd.yaml")
    assert result.config is not None, [str(d) for d in result.diagnostics]
    config = result.config
    stasis_apps = {
        s.args.split(",")[0]
        for steps in dialplan(section(load("extensions.conf"), "from-trunk")).values()
        for s in steps
        if s.app == "Stasis"
    }
    assert stasis_apps == {config.settings.ari_app}
    sections = load("pjsip.conf")
    trunk = config.trunks["carrier-fr"]
    inbound = section(sections, trunk.inbound_endpoint, "endpoint")
    assert inbound.get("context") == "from-trunk"
    outbound = re.fullmatch(r"PJSIP/\{number\}@(?P<endpoint>[\w-]+)", trunk.dial_template)
    assert outbound is not None
    section(sections, outbound["endpoint"], "endpoint")
    for user in ("alice", "bob"):
        section(sections, user, "endpoint")


def test_softphones_match_the_recorded_lab() -> None:
    # The captures pbxd and its simulator are checked against had it on every endpoint.
    sections = load("pjsip.conf")
    endpoints = [s for s in sections if s.get("type") == "endpoint"]
    assert {s.name for s in endpoints} >= {"trunk-in", "trunk-out", "alice", "bob"}
    for endpoint in endpoints:
        assert endpoint.get("send_connected_line") == "no", endpoint.name


def test_systemd_unit_keeps_the_database_in_its_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pbxd.config.compile import compile_config

    service = parse_unit(UNIT.read_text(encoding="utf-8"))["Service"]
    environment = dict(v.split("=", 1) for v in service.get("Environment", []))
    # /etc/pbxd is read-only under ProtectSystem=strict: only /var/lib/pbxd is writable.
    assert service["ReadWritePaths"] == ["/var/lib/pbxd"]
    etc = tmp_path / "etc" / "pbxd"
    etc.mkdir(parents=True)
    for name in ("pbxd.yaml", "sip-trunks.yaml"):
        (etc / name).write_text((ROOT / name).read_text(encoding="utf-8"), encoding="utf-8")
    (etc / "routing").mkdir()
    for path in (ROOT / "routing").glob("*.yaml"):
        (etc / "routing" / path.name).write_text(path.read_text(encoding="utf-8"))
    monkeypatch.delenv("PBXD_DATABASE_URL", raising=False)
    monkeypatch.delenv("PBXD_STATE_DIR", raising=False)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    result = compile_config(etc / "pbxd.yaml")
    assert result.config is not None, [str(d) for d in result.diagnostics]
    assert result.config.settings.database_url == "sqlite:////var/lib/pbxd/pbxd.db"


def test_systemd_unit_never_stops_restarting() -> None:
    unit = parse_unit(UNIT.read_text(encoding="utf-8"))
    # systemd's default (5 starts in 10 s) would leave pbxd dead after a short outage.
    assert unit["Unit"]["StartLimitIntervalSec"] == ["0"]


def test_simulator_passes_the_stasis_args_of_the_shipped_dialplan() -> None:
    from pbxd.sim import SHIPPED_STASIS_ARGS

    ctx = section(load("extensions.conf"), "from-trunk")
    shipped = {
        tuple(s.args.split(",")[1:])
        for steps in dialplan(ctx).values()
        for s in steps
        if s.app == "Stasis"
    }
    assert shipped == {SHIPPED_STASIS_ARGS}


def test_simulator_runs_the_shipped_dialplan_after_stasis() -> None:
    from pbxd.sim.pbx import SHIPPED_TRUNK_DIALPLAN, SHIPPED_TRUNK_LABELS

    ctx = section(load("extensions.conf"), "from-trunk")
    for steps in dialplan(ctx).values():
        stasis = [s.app for s in steps].index("Stasis")
        after = {n: (s.app, s.args) for n, s in enumerate(steps, start=1) if n > stasis + 1}
        assert after == SHIPPED_TRUNK_DIALPLAN
        labels = {s.label: n for n, s in enumerate(steps, start=1) if s.label}
        assert labels == SHIPPED_TRUNK_LABELS


def test_systemd_unit_is_type_notify_with_a_watchdog_and_a_reload() -> None:
    from pbxd.systemd import STATUS_EVERY_S

    service = parse_unit(UNIT.read_text(encoding="utf-8"))["Service"]
    assert service["Type"] == ["notify"] and service["NotifyAccess"] == ["main"]
    [watchdog] = service["WatchdogSec"]
    # pbxd pings every half period, from a loop that wakes at least every STATUS_EVERY_S.
    assert int(watchdog) >= 4 * STATUS_EVERY_S
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    # The notify socket is AF_UNIX: the address-family filter must keep it.
    assert "AF_UNIX" in " ".join(service["RestrictAddressFamilies"]).split()
    assert service["SystemCallFilter"] == ["@system-service"]
    assert service["CapabilityBoundingSet"] == [""]


def test_agi_example_context_uses_what_pbxd_serves_and_sets() -> None:
    from pbxd.agi.route import AgiResult, RouteAnswer
    from pbxd.agi.server import FastAgiServer
    from pbxd.clock import RealClock
    from pbxd.config.compile import compile_config
    from pbxd.dialplan.flow import LegPlan

    ctx = section(load("extensions.conf"), "from-trunk-agi")
    steps = dialplan(ctx)
    [number] = [p for p in steps if p != "h"]
    apps = [s.app for s in steps[number]]
    assert apps[:3] == ["NoOp", "AGI", "GotoIf"] and "Dial" in apps
    scripts = {
        s.args.split(",")[0].rpartition("/")[2]
        for ext in steps.values()
        for s in ext
        if s.app == "AGI"
    }
    config = compile_config(ROOT / "pbxd.yaml").config
    assert config is not None
    served = FastAgiServer(config, None, RealClock()).scripts  # type: ignore[arg-type]
    assert scripts == {"route", "result"} and scripts <= set(served)
    # Every PBXD_* variable the dialplan reads is one the route script sets.
    leg = LegPlan("alice", "PJSIP/alice", None, 20, "+33612000001", "Jean")
    ring = RouteAnswer(
        AgiResult.RING, "+33170000001", "", legs=(leg,), timeout=20, cause=1, greeting=("hi",)
    )
    set_names = {name for name, _ in ring.variables()}
    read = set(re.findall(r"\$\{(PBXD_\w+)\}", " ".join(s.args for s in steps[number])))
    assert read and read <= set_names
    # Each result a route may give has its branch; the `h` report passes the outcome in order.
    branches = " ".join(s.args for s in steps[number] if s.app == "GotoIf")
    assert all(f'"{r}"' in branches for r in (AgiResult.RING, AgiResult.CLOSED))
    [report] = steps["h"]
    assert report.args.split(",")[1:] == [
        "${DIALSTATUS}",
        "${ANSWEREDTIME}",
        "${DIALEDTIME}",
        "${DIALEDPEERNUMBER}",
        "${HANGUPCAUSE}",
    ]
    assert "PBXD_HUNT_DIAL_n" in (CONF_DIR / "extensions.conf").read_text()
