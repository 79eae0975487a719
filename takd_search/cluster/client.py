"""Talking to a cluster's job server: its address, a JobSubmissionClient that sends the
token, and authentication/connection failures as one line each.

Token authentication (on by default in Ray 2.60): the client reads the cluster's token
where Ray's own loader does (takd_search.ray_token) and sends it as `Authorization:
Bearer`, whatever `RAY_AUTH_MODE` says (unless it says `disabled`). Ray's job client only
sends it when `RAY_AUTH_MODE=token`.

Ray's job client comes with `ray[default]` (the `cluster` extra); it is imported when a
client is made, so that a missing extra is one line, not an ImportError.
"""

from __future__ import annotations

import logging
import os
import sys

from takd_search.errors import UserError, first_line
from takd_search.ray_token import read_token


def say(msg: str = "") -> None:
    """A line for the user, on stderr (stdout carries the job id, or the job's log)."""
    print(msg, file=sys.stderr, flush=True)


# ---- address and client -----------------------------------------------------------------
def job_address(address: str | None) -> str:
    """--address, else $RAY_API_SERVER_ADDRESS, else an http $RAY_ADDRESS; with a scheme."""
    env = os.environ.get("RAY_ADDRESS", "")
    address = address or os.environ.get("RAY_API_SERVER_ADDRESS") or ("://" in env and env)
    if not address:
        raise UserError(
            "no cluster named: pass --address http://HEAD:8265 (the head's dashboard port) "
            "or set RAY_API_SERVER_ADDRESS"
        )
    if "://" not in address:
        address = f"http://{address}"
    if address.startswith("ray://"):
        raise UserError(
            f"--address {address} is a Ray Client address: jobs go to the dashboard, "
            "e.g. --address http://HEAD:8265"
        )
    return address.rstrip("/")


def client(address: str | None):
    """A JobSubmissionClient for the cluster, or one line saying what is wrong."""
    try:
        # Ray: imported only once a command needs it
        from ray.exceptions import AuthenticationError
        from ray.job_submission import JobSubmissionClient
    except ImportError:
        raise UserError(
            "submitting to a cluster needs Ray's job client: pip install 'takd-search[cluster]'"
            " (it installs ray[default])"
        ) from None
    address = job_address(address)

    for name in (  # no INFO lines about uploads and websockets (these set INFO themselves)
        "ray",
        "ray.dashboard.modules.dashboard_sdk",
        "ray.dashboard.modules.job.sdk",
        "ray._private.runtime_env.packaging",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)
    token, source = read_token()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        return JobSubmissionClient(address, headers=headers)
    except AuthenticationError as e:
        raise _auth_error(address, token, source, e) from None
    except ConnectionError:
        raise UserError(
            f"cannot reach the Ray job server at {address}: start the cluster "
            "(`ray start --head --dashboard-host 0.0.0.0`, see docs/cluster.md) or pass "
            "--address http://HEAD:8265"
        ) from None
    except Exception as e:  # a 404 from something that is not Ray's dashboard, bad URL...
        raise UserError(
            f"{address} does not answer as a Ray job server ({first_line(e)}): pass the "
            "head's dashboard address, e.g. --address http://HEAD:8265"
        ) from None


def _auth_error(address: str, token, source: str, err) -> UserError:
    if token is None:
        why = (
            "RAY_AUTH_MODE=disabled here"
            if source.startswith("RAY_AUTH_MODE")
            else "none was found (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token)"
        )
        return UserError(
            f"the Ray cluster at {address} requires a token and {why}: copy the head's "
            "token to ~/.ray/auth_token or set RAY_AUTH_TOKEN_PATH / RAY_AUTH_TOKEN "
            "(`ray get-auth-token` on the head prints it)"
        )
    if "Missing" in str(err):
        return UserError(
            f"the Ray cluster at {address} did not receive the token from {source}: is a "
            "proxy dropping the Authorization header?"
        )
    return UserError(
        f"the Ray cluster at {address} rejected the token from {source}: use the head's "
        "token (`ray get-auth-token` on the head prints it)"
    )


def call(fn, *args, address: str = "", **kw):
    """A client call with auth/connection failures as one line."""
    from ray.exceptions import AuthenticationError  # Ray: imported only once a command needs it

    try:
        return fn(*args, **kw)
    except AuthenticationError as e:
        token, source = read_token()
        raise _auth_error(address, token, source, e) from None
    except ConnectionError:
        raise UserError(
            f"lost the Ray job server at {address}: is the head still up? (`ray status` there)"
        ) from None
