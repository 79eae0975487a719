"""The cluster's auth token, read where Ray's own loader reads it (no Ray import here).

Token authentication is on by default in Ray 2.60. The token is `RAY_AUTH_TOKEN`, else
the file `RAY_AUTH_TOKEN_PATH`, else `~/.ray/auth_token`; `RAY_AUTH_MODE=disabled` turns
it off. Both the job client (cluster/) and the search's `ray.init` (search/) need it, so
it lives here, below both.
"""

from __future__ import annotations

import os
from pathlib import Path

from takd_search.errors import UserError


def read_token() -> tuple[str | None, str]:
    """(token, where it came from), looked up as Ray's own loader does; (None, why) if none."""
    if os.environ.get("RAY_AUTH_MODE", "").strip().lower() == "disabled":
        return None, "RAY_AUTH_MODE=disabled"
    env = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    if env:
        return env, "RAY_AUTH_TOKEN"
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if path:
        try:
            token = Path(path).expanduser().read_text().strip()
        except OSError as e:
            raise UserError(
                f"RAY_AUTH_TOKEN_PATH={path} cannot be read ({e.strerror}): point it at a "
                "copy of the head's token file, or unset it"
            ) from None
        if not token:
            raise UserError(f"RAY_AUTH_TOKEN_PATH={path} is empty: copy the head's token there")
        return token, f"RAY_AUTH_TOKEN_PATH={path}"
    default = Path.home() / ".ray" / "auth_token"
    try:
        token = default.read_text().strip()
    except OSError:
        return None, "no token found"
    return (token, str(default)) if token else (None, "no token found")
