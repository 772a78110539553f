"""`make serve`: a `demo` admin with a fresh random password, printed once (never a default)."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

from argon2 import PasswordHasher

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pbxd.config.compile import compile_config  # noqa: E402
from pbxd.web.users import Role, add_user  # noqa: E402


def main() -> int:
    """Create (or re-key) the demo user; print how to log in."""
    result = compile_config(REPO / "pbxd.yaml")
    if result.config is None:
        print("make serve: fix the configuration first (pbxd check)", file=sys.stderr)
        return 1
    settings = result.config.settings
    password = secrets.token_urlsafe(12)
    add_user(settings.users_file, "demo", Role.ADMIN, password=password, hasher=PasswordHasher())
    print(f"Web pages: http://{settings.http_bind}/  (plain HTTP on loopback)")
    print(f"Log in as: demo / {password}   (a new password each `make serve`)")
    print("Stop with Ctrl-C. Without Asterisk, /readyz answers 503 and the pages still work.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
