"""`pbxd voicemail NUMBER`: a number's voicemail messages; export one as WAV, delete one."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

from pbxd.cdr.reports import caller_text, format_seconds, iso_local, iso_utc, local_time
from pbxd.cli.common import read_request, resolve_number
from pbxd.cli.table import render_table
from pbxd.voicemail.messages import Message
from pbxd.voicemail.store import MessageNotFound, MessageStore

HEADERS = ("id", "received", "caller", "length", "box", "call")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `pbxd voicemail`."""
    parser = sub.add_parser(
        "voicemail",
        help="list, export or delete a number's voicemail messages",
        description="The voicemail messages left on NUMBER (E.164 or national form), newest "
        "first, times in the number's time zone. --export ID FILE writes a message's WAV; "
        "--delete ID removes a message.",
    )
    parser.add_argument("number", nargs="+", help="the number; spaces allowed (01 70 00 00 01)")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--export", nargs=2, metavar=("ID", "FILE"), help="write ID's WAV to FILE")
    action.add_argument("--delete", metavar="ID", help="delete message ID")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument("--dir", help="the messages folder (default: pbxd.yaml's)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """List, export or delete; exit 1 on a bad number or an unknown message, 2 on I/O errors."""
    opened = read_request(
        args, "voicemail", lambda config: resolve_number(" ".join(args.number), config)
    )
    if isinstance(opened, int):
        return opened
    config, (did, tz) = opened
    store = MessageStore(Path(args.dir) if args.dir else config.settings.voicemail_folder)
    try:
        if args.export:
            message_id, dest = args.export
            message = store.export(did, message_id, Path(dest))
            print(f"{message.message_id}: {format_seconds(message.duration)} written to {dest}")
        elif args.delete:
            message = store.delete(did, args.delete)
            print(f"{message.message_id}: deleted")
        else:
            _list(store.messages(did), did, tz, args.format)
    except MessageNotFound as exc:
        print(f"pbxd voicemail: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        print(f"pbxd voicemail: cannot{where}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


def _list(messages: list[Message], did: str, tz: ZoneInfo, form: str) -> None:
    if form == "json":
        print(json.dumps([_json(m, tz) for m in messages], indent=2, ensure_ascii=False))
        return
    print(f"{did}: {len(messages)} message(s), times in {tz.key}")
    rows = [
        (
            m.message_id,
            local_time(m.recorded_at, tz),
            caller_text(m.caller_number, m.caller_name),
            format_seconds(m.duration),
            m.mailbox,
            m.call_id,
        )
        for m in messages
    ]
    print(render_table(HEADERS, rows))
    if not rows:
        print("(no messages)")


def _json(message: Message, tz: ZoneInfo) -> dict[str, object]:
    return {
        **message.to_json(),
        "recorded_at": iso_local(message.recorded_at, tz),
        "recorded_at_utc": iso_utc(message.recorded_at),
        "time_zone": tz.key,
    }
