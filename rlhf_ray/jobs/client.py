"""The job server of a Ray cluster (the head's dashboard port, ``http://HEAD:8265``), reached with
errors that say what to do: no address, an unreachable server, a missing or rejected token, an
unknown job."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

# Where Ray's own `ray job` commands look for the address when it is not given.
ADDRESS_ENV_VARS = ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS")
CONNECT_TIMEOUT_S = 10.0
TERMINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})
TOKEN_SOURCES = "RAY_AUTH_TOKEN, or a file named by RAY_AUTH_TOKEN_PATH (default ~/.ray/auth_token)"


class JobServerError(Exception):
    """The job server cannot be used as asked; the message says why and what to do."""


def job_server_address(given: str | None) -> str:
    """``given``, else ``RAY_API_SERVER_ADDRESS``, else ``RAY_ADDRESS``: an http(s) URL."""
    address = given or next((os.environ[name] for name in ADDRESS_ENV_VARS if os.environ.get(name)), None)
    if address is None:
        raise JobServerError("no job server: pass --address http://HEAD:8265 or set RAY_API_SERVER_ADDRESS")
    if urlsplit(address).scheme not in ("http", "https"):
        raise JobServerError(
            f"{address!r} is not a job server URL: give the head's dashboard address, e.g. http://HEAD:8265 "
            "(not the cluster address HEAD:6379)"
        )
    return address.rstrip("/")


def connect(address: str) -> JobSubmissionClient:
    """A client of the job server at ``address``, checked to answer (and to accept our token)."""
    _probe(address)
    from ray.job_submission import JobSubmissionClient

    with job_server_errors(address), _address_env_removed():
        return JobSubmissionClient(address)


@contextmanager
def job_server_errors(address: str) -> Iterator[None]:
    """Ray's client errors as ``JobServerError``s that name the server and the fix."""
    from ray.exceptions import AuthenticationError

    try:
        yield
    except AuthenticationError as exc:
        if exc.message.startswith("Authentication failed"):
            raise JobServerError(
                f"the Ray job server at {address} rejected the token: the token in {TOKEN_SOURCES} "
                "is not this cluster's"
            ) from None
        raise JobServerError(
            f"the Ray job server at {address} requires a token: set RAY_AUTH_MODE=token and the cluster's "
            f"token in {TOKEN_SOURCES}"
        ) from None
    except OSError as exc:
        raise JobServerError(_unreachable(address, exc)) from None
    except RuntimeError as exc:
        raise JobServerError(f"the Ray job server at {address}: {exc}") from None


def _probe(address: str) -> None:
    """Fail in seconds on an address nobody answers (Ray's client has no connect timeout)."""
    url = urlsplit(address)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise JobServerError(_unreachable(address, exc)) from None


def _unreachable(address: str, exc: OSError) -> str:
    return (
        f"cannot reach the Ray job server at {address} ({exc.strerror or exc}): is the head running, and is "
        "its dashboard port reachable from here (an SSH tunnel or `kubectl port-forward` when it listens on "
        "loopback)?"
    )


@contextmanager
def _address_env_removed() -> Iterator[None]:
    """Ray's client prefers these variables to the address it is given; the given one wins here."""
    saved = {name: os.environ.pop(name) for name in ADDRESS_ENV_VARS if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)
