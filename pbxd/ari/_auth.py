"""The HTTP Basic credentials header, shared by the REST client and the event stream."""

from __future__ import annotations

import base64


def basic_auth_header(username: str, password: str) -> dict[str, str]:
    """An Authorization header for ARI (never put credentials in a URL, where they get logged)."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}
