"""Who may use the web pages and the API: users, API tokens and browser sessions.

Users live in one YAML file that pbxd.yaml names (`http.users_file`), written by
`pbxd users add`. It holds argon2id hashes only: a token or a password is shown once, when
it is made, and never stored. A token reads `pbxd_<id>_<secret>`: the id finds its hash
without trying every one; argon2 checks the secret. There is no default user and no
default password: with an empty file every request but the health checks is refused.

Argon2 is slow on purpose (tens of milliseconds): the daemon runs it in a thread, and keeps
the tokens it has verified (by their SHA-256) so a script polling the API pays it once.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import tempfile
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

TOKEN_PREFIX = "pbxd"
USER_NAME = re.compile(r"^[a-z][a-z0-9._-]{0,63}$")
MIN_PASSWORD = 12  # characters; an admin's password guards call logs and runtime state
MAX_SECRET = 1024  # a longer password or token is refused before argon2 sees it
VERIFIED_CACHE = 1024  # tokens remembered as verified
MAX_SESSIONS = 10_000  # browser sessions kept at once; the oldest goes first


class Role(StrEnum):
    """What a user may do: `viewer` reads, `admin` also changes runtime state."""

    VIEWER = "viewer"
    ADMIN = "admin"


class UsersFileError(ValueError):
    """The users file cannot be read or does not have the expected shape."""


@dataclass(frozen=True, slots=True)
class TokenEntry:
    """One API token as stored: its public id and the hash of its secret."""

    token_id: str
    hash: str
    created: str


@dataclass(frozen=True, slots=True)
class User:
    """A person or a script allowed in, with a role; secrets only as argon2 hashes."""

    name: str
    role: Role
    password_hash: str | None = None
    tokens: tuple[TokenEntry, ...] = ()

    @property
    def is_admin(self) -> bool:
        """Whether this user may change runtime state."""
        return self.role is Role.ADMIN


def check_user_name(name: str) -> None:
    """Raise ValueError unless `name` is a short lowercase login name."""
    if not USER_NAME.match(name):
        raise ValueError(
            f"{name[:70]!r} is not a user name: lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter, at most 64 characters"
        )


def check_password(password: str) -> None:
    """Raise ValueError when `password` is too short or too long to be taken."""
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_SECRET:
        raise ValueError(f"a password has at most {MAX_SECRET} characters")


def new_token() -> tuple[str, str]:
    """A fresh API token and its public id: (`pbxd_<id>_<secret>`, id)."""
    token_id = secrets.token_hex(4)
    return f"{TOKEN_PREFIX}_{token_id}_{secrets.token_urlsafe(32)}", token_id


def split_token(token: str) -> tuple[str, str] | None:
    """(id, secret) of a token in pbxd's form; None for anything else."""
    prefix, _, rest = token.partition("_")
    token_id, _, secret = rest.partition("_")
    if prefix != TOKEN_PREFIX or not re.fullmatch(r"[0-9a-f]{8}", token_id) or not secret:
        return None
    return token_id, secret


def _fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def load_users(path: Path) -> dict[str, User]:
    """The users in `path` (none when it does not exist); UsersFileError says what is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise UsersFileError(f"cannot read {path}: {exc}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise UsersFileError(f"{path} is not YAML: {exc}") from None
    raw = data.get("users") if isinstance(data, dict) else None
    if not isinstance(raw, dict):
        raise UsersFileError(f"{path}: expected `users:` mapping names to users")
    return {str(name): _user(str(name), entry, path) for name, entry in raw.items()}


def _user(name: str, entry: Any, path: Path) -> User:
    if not isinstance(entry, dict):
        raise UsersFileError(f"{path}: user {name!r} is not a mapping")
    try:
        role = Role(str(entry.get("role")))
    except ValueError:
        raise UsersFileError(f"{path}: user {name!r} has no role viewer or admin") from None
    tokens = entry.get("tokens") or []
    if not isinstance(tokens, list) or not all(isinstance(t, dict) for t in tokens):
        raise UsersFileError(f"{path}: user {name!r}: tokens must be a list of mappings")
    return User(
        name=name,
        role=role,
        password_hash=entry.get("password") or None,
        tokens=tuple(
            TokenEntry(str(t.get("id", "")), str(t.get("hash", "")), str(t.get("created", "")))
            for t in tokens
        ),
    )


def save_users(path: Path, users: dict[str, User]) -> None:
    """Write the users file atomically, readable by its owner only (it holds hashes)."""
    body = {
        "users": {
            user.name: {
                "role": str(user.role),
                **({"password": user.password_hash} if user.password_hash else {}),
                "tokens": [
                    {"id": t.token_id, "hash": t.hash, "created": t.created} for t in user.tokens
                ],
            }
            for user in sorted(users.values(), key=lambda u: u.name)
        }
    }
    text = (
        "# pbxd web users and API tokens, written by `pbxd users`: argon2 hashes only.\n"
        + yaml.safe_dump(body, sort_keys=False)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class UserDirectory:
    """The users file as the daemon reads it: re-read when it changes, checked with argon2.

    Methods that verify a secret block for argon2's time: call them in a thread.
    """

    path: Path
    hasher: PasswordHasher = field(default_factory=PasswordHasher)
    _users: dict[str, User] = field(default_factory=dict)
    _stamp: tuple[int, int] | None = None
    _verified: OrderedDict[str, str] = field(default_factory=OrderedDict)

    def users(self) -> dict[str, User]:
        """Every user, as the file says now (an unreadable file keeps the last good read)."""
        try:
            stat = self.path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            stamp = None
        if stamp != self._stamp:
            self._users = load_users(self.path) if stamp is not None else {}
            self._stamp = stamp
            self._verified.clear()  # a removed token must stop working at once
        return self._users

    def verified_token(self, token: str) -> User | None:
        """The user of a token verified already (a hash lookup, no argon2: fine on the
        event loop); None when it must be checked (`by_token`)."""
        if len(token) > MAX_SECRET:
            return None
        users = self.users()  # first: a changed file forgets every token verified before
        known = self._verified.get(_fingerprint(token))
        return users.get(known) if known is not None else None

    def by_token(self, token: str) -> User | None:
        """The user an API token belongs to; None for a wrong, revoked or malformed one."""
        if len(token) > MAX_SECRET:
            return None
        known = self.verified_token(token)
        if known is not None:
            return known
        users = self.users()
        parts = split_token(token)
        if parts is None:
            return None
        token_id, secret = parts
        for user in users.values():
            for entry in user.tokens:
                if entry.token_id == token_id and self._matches(entry.hash, secret):
                    self._remember(token, user.name)
                    return user
        return None

    def by_password(self, name: str, password: str) -> User | None:
        """The user when `password` is theirs (or one of their API tokens); else None."""
        user = self.users().get(name)
        if user is None or len(password) > MAX_SECRET:
            # The same work as a real check: the answer's timing must not say who exists.
            self._matches(_DUMMY_HASH, password[:MAX_SECRET])
            return None
        if user.password_hash and self._matches(user.password_hash, password):
            return user
        token_user = self.by_token(password)
        return user if token_user is not None and token_user.name == user.name else None

    def _matches(self, hashed: str, secret: str) -> bool:
        with contextlib.suppress(VerificationError, InvalidHashError):
            return self.hasher.verify(hashed, secret)
        return False

    def _remember(self, token: str, name: str) -> None:
        self._verified[_fingerprint(token)] = name
        while len(self._verified) > VERIFIED_CACHE:
            self._verified.popitem(last=False)


_DUMMY_HASH = PasswordHasher().hash("pbxd: no such user")


def add_user(
    path: Path, name: str, role: Role, *, password: str | None, hasher: PasswordHasher
) -> str:
    """Create user `name` (or give an existing one a new token and role); returns the token.

    The password, when given, replaces the user's browser password.
    """
    check_user_name(name)
    if password is not None:
        check_password(password)
    users = load_users(path)
    token, token_id = new_token()
    entry = TokenEntry(
        token_id, hasher.hash(token.split("_", 2)[2]), datetime.now(UTC).isoformat("T", "seconds")
    )
    old = users.get(name)
    users[name] = User(
        name=name,
        role=role,
        password_hash=hasher.hash(password) if password else (old.password_hash if old else None),
        tokens=(*(old.tokens if old else ()), entry),
    )
    save_users(path, users)
    return token


def remove_user(path: Path, name: str) -> bool:
    """Delete user `name` and all their tokens; False when there was no such user."""
    users = load_users(path)
    if users.pop(name, None) is None:
        return False
    save_users(path, users)
    return True


@dataclass(frozen=True, slots=True)
class Session:
    """One browser's login: whose it is, its CSRF token, until when it is valid.

    The role is not kept here: it is read from the users file at each request, so a user
    removed or demoted loses their rights at once.
    """

    session_id: str
    user: str
    csrf: str
    expires: float  # on the clock's monotonic scale


@dataclass
class Sessions:
    """Browser sessions, in memory (a restart logs everyone out, which is acceptable)."""

    lifetime: float  # seconds
    _by_id: OrderedDict[str, Session] = field(default_factory=OrderedDict)

    def open(self, user: User, now: float) -> Session:
        """A new session for `user`, with its own CSRF token."""
        session = Session(
            session_id=secrets.token_urlsafe(32),
            user=user.name,
            csrf=secrets.token_urlsafe(32),
            expires=now + self.lifetime,
        )
        self._by_id[session.session_id] = session
        while len(self._by_id) > MAX_SESSIONS:
            self._by_id.popitem(last=False)
        return session

    def get(self, session_id: str, now: float) -> Session | None:
        """The live session with that id; an expired one is forgotten."""
        session = self._by_id.get(session_id)
        if session is None:
            return None
        if session.expires <= now:
            del self._by_id[session_id]
            return None
        return session

    def close(self, session_id: str) -> None:
        """Log out: the session id stops working."""
        self._by_id.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._by_id)
