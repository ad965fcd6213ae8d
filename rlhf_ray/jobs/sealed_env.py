"""Environment variables forwarded to a submitted job (``rlhf-ray submit --env NAME``), sealed so that
nothing on the cluster holds them in clear: Ray writes a job's runtime environment, ``env_vars``
included, to ``runtime_env_agent.log`` on every node it starts on, and shows it in job listings.

The key derives from the cluster's Ray auth token, which the submitter needs to reach the job server
and the job inherits from the cluster: forwarding needs token authentication (``RAY_AUTH_MODE=token``).
"""

from __future__ import annotations

import base64
import hashlib
import json

from cryptography.fernet import Fernet, InvalidToken

SEALED_ENV_VAR = "RLHF_RAY_SEALED_ENV"


class SealError(RuntimeError):
    """Forwarded variables that cannot be sealed or opened."""


def cluster_token() -> str | None:
    """The token Ray itself sends when ``RAY_AUTH_MODE=token``: ``RAY_AUTH_TOKEN``, else the file named
    by ``RAY_AUTH_TOKEN_PATH``, else ``~/.ray/auth_token``. None without token authentication."""
    from ray._raylet import AuthenticationTokenLoader

    return AuthenticationTokenLoader.instance().get_raw_token() or None


def seal(values: dict[str, str], token: str) -> str:
    return _fernet(token).encrypt(json.dumps(values).encode()).decode()


def unseal(sealed: str, token: str | None) -> dict[str, str]:
    if token is None:
        raise SealError(
            f"the job has forwarded variables ({SEALED_ENV_VAR}) but no Ray auth token to open them: "
            "the cluster must run with RAY_AUTH_MODE=token"
        )
    try:
        return json.loads(_fernet(token).decrypt(sealed.encode()))
    except InvalidToken:
        raise SealError("the forwarded variables were sealed with another cluster's token") from None


def _fernet(token: str) -> Fernet:
    key = hashlib.sha256(b"rlhf_ray forwarded environment\0" + token.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))
