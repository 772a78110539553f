"""The HTTP Basic credentials header, shared by the REST client and the event stream."""

from __future__ import annotations

import base64
from urllib.parse import urlsplit, urlunsplit


def basic_auth_header(username: str, password: str) -> dict[str, str]:
    """An Authorization header for ARI (never put credentials in a URL, where they get logged)."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


def without_credentials(url: str) -> tuple[str, bool]:
    """`url` with any `user:password@` removed, and whether there was one to remove.

    Credentials in the ARI URL would end up in every log line naming the URL, and aiohttp
    refuses them beside our Authorization header; the password comes from its own setting.
    """
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, False
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host)), True
