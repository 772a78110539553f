"""`pbxd users`: who may use the web pages and the API (argon2-hashed, in `http.users_file`)."""

from __future__ import annotations

import argparse
import getpass
import sys

from argon2 import PasswordHasher

from pbxd.cli.common import load_config_or_report, report
from pbxd.cli.table import render_table
from pbxd.web.users import (
    Role,
    UsersFileError,
    add_user,
    check_password,
    load_users,
    remove_user,
)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `pbxd users add|list|remove`."""
    parser = sub.add_parser(
        "users",
        help="add, list or remove web users and API tokens",
        description="Users of the web pages and the JSON API, kept argon2-hashed in the file "
        "pbxd.yaml names (http.users_file). `add` prints a new API token once; with "
        "--password it also sets the browser password (asked on the terminal, or one line on "
        "standard input). There is no default user and no default password.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="create a user (or give one a new token)")
    add.add_argument("name", help="login name: lowercase letters, digits, . _ -")
    add.add_argument("--role", choices=[r.value for r in Role], required=True)
    add.add_argument(
        "--password", action="store_true", help="also set a password for the web pages"
    )
    add.set_defaults(func=run_add)
    listing = actions.add_parser("list", help="the users, their roles and token ids")
    listing.set_defaults(func=run_list)
    remove = actions.add_parser("remove", help="delete a user and every token of theirs")
    remove.add_argument("name")
    remove.set_defaults(func=run_remove)


def _read_password() -> str:
    """The new password: asked twice on a terminal, else one line of standard input."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the two passwords differ")
    return first


def run_add(args: argparse.Namespace) -> int:
    """Create the user, print the token; 1 on a bad name or password."""
    config = load_config_or_report(args)
    if config is None:
        return 1
    path = config.settings.users_file
    try:
        password = None
        if args.password:
            password = _read_password()
            check_password(password)
        token = add_user(
            path, args.name, Role(args.role), password=password, hasher=PasswordHasher()
        )
    except (ValueError, OSError) as exc:
        report("users", str(exc))
        return 1
    print(f"user {args.name} ({args.role}) saved in {path}")
    print("API token (shown once: keep it; send it as `Authorization: Bearer TOKEN`):")
    print(token)
    return 0


def run_list(args: argparse.Namespace) -> int:
    """Print every user with role, whether a password is set, and token ids."""
    config = load_config_or_report(args)
    if config is None:
        return 1
    try:
        users = load_users(config.settings.users_file)
    except UsersFileError as exc:
        report("users", str(exc))
        return 1
    rows = [
        (
            u.name,
            str(u.role),
            "yes" if u.password_hash else "no",
            " ".join(t.token_id for t in u.tokens) or "-",
        )
        for u in sorted(users.values(), key=lambda u: u.name)
    ]
    print(render_table(("user", "role", "password", "tokens"), rows))
    if not rows:
        print("(no users: `pbxd users add NAME --role admin`)")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    """Delete a user; 1 when there is no such user."""
    config = load_config_or_report(args)
    if config is None:
        return 1
    try:
        removed = remove_user(config.settings.users_file, args.name)
    except (UsersFileError, OSError) as exc:
        report("users", str(exc))
        return 1
    if not removed:
        report("users", f"no user {args.name!r}")
        return 1
    print(f"user {args.name} removed; their session and tokens stop working now")
    return 0
