"""``rlhf-ray reward-server``: a reward model, or a reward function, behind the protocol of
``reward.source: http`` (``rlhf_ray.rewards.http``), as a Ray Serve deployment. Ray Serve runs the
replicas and gathers concurrent requests into one batch; several runs can share one server.

A reward model scores the texts it is sent as it was trained on them: the prompt as given (the policy's
rendered prompt) followed by the response and the end-of-sequence token.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

import torch
from fastapi import FastAPI, HTTPException

from rlhf_ray.data.batch import SequenceBatch, pack_sequences
from rlhf_ray.data.records import token_ids
from rlhf_ray.models import load_sequence_score_model, load_tokenizer
from rlhf_ray.models.checks import ModelFolder, check_model_folders
from rlhf_ray.models.forward import sequence_scores
from rlhf_ray.models.reward_stats import RewardStats
from rlhf_ray.rewards.functions import RewardError, call_reward_function, import_reward_function
from rlhf_ray.rewards.http import ScoreRequest, ScoreResponse
from rlhf_ray.serving.options import ServerOptions


@dataclass(frozen=True)
class ServedReward:
    """What the server scores with: a reward-model folder or a ``module:function``."""

    target: str
    dtype: str = "float32"
    """The reward model's weights' dtype."""
    normalize: bool = False
    """Standardise a reward model's scores with the statistics ``rlhf-ray rm`` saved with it."""

    @property
    def is_model(self) -> bool:
        return Path(self.target).is_dir() or ":" not in self.target

    def check(self) -> None:
        """Before anything starts: the folder holds a reward model, or the function imports."""
        if self.is_model:
            folder = ModelFolder("reward", "MODEL_FOLDER", self.target)
            check_model_folders([folder], tokenizer=folder, score_heads={"reward"})
            if self.normalize:
                RewardStats.load(self.target)
        else:
            import_reward_function(self.target)


class ModelScorer:
    """A reward model's scores of (prompt, response) texts, in this process."""

    def __init__(self, served: ServedReward):
        self.tokenizer = load_tokenizer(served.target, "left", role="reward")
        self.model = load_sequence_score_model(served.target, served.dtype, role="reward").eval()
        self.stats = RewardStats.load(served.target) if served.normalize else None

    def batch(self, prompts: list[str], responses: list[str]) -> SequenceBatch:
        eos = self.tokenizer.eos_token
        return pack_sequences(
            [token_ids(self.tokenizer, prompt) for prompt in prompts],
            [token_ids(self.tokenizer, response + eos) for response in responses],
            self.tokenizer.pad_token_id,
        )

    @torch.inference_mode()
    def scores(self, request: ScoreRequest) -> list[float]:
        scores = sequence_scores(self.model, self.batch(request.prompts, request.responses))
        if self.stats is not None:
            scores = (scores - self.stats.mean) / max(self.stats.std, 1e-6)
        return scores.tolist()


class FunctionScorer:
    """A reward function's values, called as a run calls it (``rlhf_ray.rewards.functions``)."""

    def __init__(self, served: ServedReward):
        self.name = served.target
        self.function = import_reward_function(served.target)

    def scores(self, request: ScoreRequest) -> list[float]:
        return call_reward_function(self.function, self.name, request.arguments(), len(request)).tolist()


def scorer(served: ServedReward) -> ModelScorer | FunctionScorer:
    return ModelScorer(served) if served.is_model else FunctionScorer(served)


def merged(requests: list[ScoreRequest]) -> ScoreRequest:
    """The samples of several requests as one request (columns only when every request has them)."""
    names = set.intersection(*(set(r.columns) for r in requests))
    return ScoreRequest(
        prompts=[p for r in requests for p in r.prompts],
        responses=[x for r in requests for x in r.responses],
        labels=[label for r in requests for label in (r.labels or [None] * len(r))],
        messages=[m for r in requests for m in (r.messages or [None] * len(r))],
        columns={name: [v for r in requests for v in r.columns[name]] for name in names},
    )


def reward_deployment(served: ServedReward, max_batch_size: int, batch_wait_s: float):
    """The Ray Serve deployment: ``POST /`` a ``ScoreRequest``, answered with a ``ScoreResponse``;
    ``GET /health``."""
    from ray import serve

    app = FastAPI(title="rlhf_ray reward server")

    @serve.deployment
    @serve.ingress(app)
    class RewardServer:
        def __init__(self):
            self.scorer = scorer(served)

        @app.get("/health")
        def health(self) -> dict:
            return {"reward": served.target}

        @app.post("/")
        async def score(self, request: ScoreRequest) -> ScoreResponse:
            try:
                return ScoreResponse(scores=await self.score_batch(request))
            except RewardError as exc:  # the samples' fault, not the server's: not worth a retry
                raise HTTPException(status_code=422, detail=str(exc)) from None

        @serve.batch(max_batch_size=max_batch_size, batch_wait_timeout_s=batch_wait_s)
        async def score_batch(self, requests: list[ScoreRequest]) -> list[list[float]]:
            scores = await asyncio.to_thread(self.scorer.scores, merged(requests))
            ends = list(accumulate(len(r) for r in requests))
            return [scores[end - len(r) : end] for r, end in zip(requests, ends, strict=True)]

    return RewardServer


def serve_reward(served: ServedReward, options: ServerOptions, ready=print) -> None:
    """Serve until SIGINT or SIGTERM; ``ready`` is told the URL once the replicas answer."""
    import ray
    from ray import serve

    served.check()
    ray.init(
        address=options.ray_address or "local",
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    logging.getLogger("ray.serve").setLevel(logging.WARNING)
    try:
        serve.start(http_options={"host": options.host, "port": options.port})
        deployment = reward_deployment(served, options.max_batch_size, options.batch_wait_s).options(
            num_replicas=options.replicas,
            ray_actor_options={"num_cpus": options.cpus_per_replica, "num_gpus": options.gpus_per_replica},
        )
        serve.run(deployment.bind(), name="reward", route_prefix="/")
        ready(f"http://{options.host}:{options.port}/")
        _wait_for_signal()
    finally:
        serve.shutdown()
        ray.shutdown()


def _wait_for_signal() -> None:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
