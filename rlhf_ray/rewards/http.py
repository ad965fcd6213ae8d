"""A reward computed by a server (``reward.source: http``): the JSON protocol, and the client that posts
batches of samples with a timeout, retries with exponential backoff and a limit on the requests in flight.

A request that still fails after the last retry raises ``RewardError`` naming the URL, the status and the
samples: a reward is never silently replaced by zero.
"""

from __future__ import annotations

import socket
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any
from urllib.parse import urlsplit

import httpx
import torch
from pydantic import BaseModel, ConfigDict, model_validator
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from rlhf_ray.config.reward_arguments import STANDARD_ARGUMENTS
from rlhf_ray.config.schema import RewardConfig, RewardServerConfig
from rlhf_ray.rewards.functions import RewardError, checked_rewards, reward_arguments

CONNECT_TIMEOUT_S = 5.0
RETRIED_STATUSES = frozenset({408, 429})
"""Besides every 5xx: the statuses that say "try again later"."""


class ScoreRequest(BaseModel):
    """One request: a batch of samples, each list with one entry per sample."""

    model_config = ConfigDict(extra="forbid")

    prompts: list[str]
    """The prompts as the policy saw them (chat template applied)."""
    responses: list[str]
    labels: list[str | None] | None = None
    """The prompt rows' labels (None where a row has none)."""
    columns: dict[str, list[Any]] = {}
    """The prompt rows' other columns, by name."""
    messages: list[list[dict[str, str]] | None] | None = None
    """Each sample's conversation as chat messages (None where there is none)."""

    @model_validator(mode="after")
    def _one_entry_per_sample(self) -> ScoreRequest:
        lengths = {"responses": len(self.responses), **{f"columns.{k}": len(v) for k, v in self.columns.items()}}
        if self.labels is not None:
            lengths["labels"] = len(self.labels)
        if self.messages is not None:
            lengths["messages"] = len(self.messages)
        wrong = [f"{name} has {length}" for name, length in lengths.items() if length != len(self.prompts)]
        if wrong:
            raise ValueError(f"{len(self.prompts)} prompts, but {', '.join(wrong)}")
        return self

    def __len__(self) -> int:
        return len(self.prompts)

    def arguments(self) -> dict[str, list[Any]]:
        """The keyword arguments a reward function is called with (``rlhf_ray.rewards.functions``)."""
        texts = {"prompt": self.prompts, "response": self.responses}
        if self.labels is not None:
            texts["label"] = self.labels
        if self.messages is not None:
            texts["messages"] = self.messages
        return reward_arguments(texts, self.columns)


class ScoreResponse(BaseModel):
    scores: list[float]
    """One score per sample, in the request's order."""


class RewardServerUnreachable(ConnectionError):
    """Nothing answers at ``reward.server.url``; raised before the run starts its roles."""


def check_reward_server(reward: RewardConfig) -> None:
    """With ``reward.source: http``, fail in seconds, before any actor starts, when nothing listens at the
    server's host and port."""
    if reward.source != "http":
        return
    server = reward.server
    url = urlsplit(server.url)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise RewardServerUnreachable(
            f"reward.server.url={server.url}: nothing answers there ({exc.strerror or exc}); start the server "
            "(`rlhf-ray reward-server MODEL_FOLDER|module:function`) or fix the URL"
        ) from None


class _Transient(Exception):
    """A failure worth another attempt: a timeout, no connection, or a 408, 429 or 5xx status."""


class RewardClient:
    """Scores samples by posting them to ``server.url``, ``server.batch_size`` samples per request and at
    most ``server.max_concurrency`` requests at once."""

    def __init__(self, server: RewardServerConfig):
        self.server = server
        self.http = httpx.Client(timeout=server.timeout_s, limits=httpx.Limits(max_connections=server.max_concurrency))
        self.pool = ThreadPoolExecutor(server.max_concurrency, thread_name_prefix="reward-client")

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)
        self.http.close()

    def scores(self, arguments: dict[str, list[Any]]) -> torch.Tensor:
        """[B] rewards of the samples that ``arguments`` (``reward_arguments``) describe."""
        size, step = len(arguments["responses"]), self.server.batch_size
        columns = {name: values for name, values in arguments.items() if name not in STANDARD_ARGUMENTS}
        messages = arguments.get("messages")
        requests = [
            (
                first,
                ScoreRequest(
                    prompts=arguments["prompts"][first : first + step],
                    responses=arguments["responses"][first : first + step],
                    labels=arguments["labels"][first : first + step],
                    messages=None if messages is None else messages[first : first + step],
                    columns={name: values[first : first + step] for name, values in columns.items()},
                ),
            )
            for first in range(0, size, step)
        ]
        futures = [self.pool.submit(self._scores, first, size, request) for first, request in requests]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
        for future in futures:  # the first failure in sample order
            if future in done and future.exception() is not None:
                raise future.exception()
        return torch.cat([future.result() for future in futures]) if futures else torch.zeros(0)

    def _scores(self, first: int, size: int, request: ScoreRequest) -> torch.Tensor:
        samples = f"samples {first}-{first + len(request) - 1} of {size}"
        retrying = Retrying(
            stop=stop_after_attempt(self.server.retries + 1),
            wait=wait_exponential(multiplier=self.server.backoff_s, max=self.server.max_backoff_s),
            retry=retry_if_exception_type(_Transient),
            reraise=True,
        )
        try:
            answer = retrying(self._post, request)
        except _Transient as exc:
            raise RewardError(
                f"reward server {self.server.url}: {exc} for {samples} (first response {request.responses[0][:60]!r}), "
                f"{self.server.retries + 1} attempts (reward.server.retries = {self.server.retries})"
            ) from None
        except httpx.HTTPStatusError as exc:
            raise RewardError(
                f"reward server {self.server.url}: {_status(exc.response)} for {samples} "
                f"(first response {request.responses[0][:60]!r}); not retried"
            ) from None
        scores = answer.get("scores") if isinstance(answer, dict) else None
        if not isinstance(scores, list):
            raise RewardError(
                f"reward server {self.server.url}: answered {str(answer)[:200]!r} for {samples}, "
                'not {"scores": [one number per sample]}'
            )
        return checked_rewards(scores, f"reward server {self.server.url}", request.responses, first)

    def _post(self, request: ScoreRequest) -> Any:
        try:
            unset = {name for name in ("labels", "messages") if getattr(request, name) is None}
            response = self.http.post(self.server.url, json=request.model_dump(exclude=unset))
        except httpx.TimeoutException:
            raise _Transient(f"no answer within reward.server.timeout_s = {self.server.timeout_s:g} s") from None
        except httpx.TransportError as exc:
            raise _Transient(f"{type(exc).__name__}: {exc}") from None
        if response.status_code >= 500 or response.status_code in RETRIED_STATUSES:
            raise _Transient(_status(response))
        response.raise_for_status()
        try:
            return response.json()
        except ValueError:
            raise RewardError(
                f"reward server {self.server.url}: answered {response.text[:200]!r}, which is not JSON"
            ) from None


def _status(response: httpx.Response) -> str:
    body = response.text.strip().replace("\n", " ")[:200]
    return f"status {response.status_code} {response.reason_phrase}" + (f" ({body})" if body else "")
