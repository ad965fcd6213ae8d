"""The reward server client (``reward.source: http``) against real servers on loopback: scores in order,
at most ``max_concurrency`` requests in flight, retries with backoff, and one clear error after the last
retry; the config's and the start-up's checks."""

import re
import time

import pytest

from rlhf_ray.config import ConfigError, validate_config
from rlhf_ray.config.schema import RewardConfig, RewardServerConfig
from rlhf_ray.rewards.functions import RewardError
from rlhf_ray.rewards.http import RewardClient, RewardServerUnreachable, ScoreRequest, check_reward_server
from rlhf_ray.serving.reward_server import FunctionScorer, ServedReward, merged
from tests.support.raw_configs import base
from tests.support.scripted_server import ScriptedServer


@pytest.fixture
def serve():
    servers = []

    def start(answer, delay_s=0.0):
        servers.append(ScriptedServer(answer, delay_s))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def lengths(body, attempt):
    return 200, {"scores": [float(len(r)) for r in body["responses"]]}


def arguments(responses, **columns):
    n = len(responses)
    return {"prompts": [f"p{i}" for i in range(n)], "responses": responses, "completions": responses,
            "labels": [None] * n, **columns}  # fmt: skip


def client(url, **fields) -> RewardClient:
    return RewardClient(RewardServerConfig(url=url, **{"backoff_s": 0.01, **fields}))


def test_scores_come_back_in_sample_order_in_batches_with_at_most_max_concurrency_in_flight(serve):
    server = serve(lengths, delay_s=0.1)
    responses = ["x" * n for n in range(1, 12)]
    scores = client(server.url, batch_size=2, max_concurrency=3).scores(arguments(responses, topic=list("abcdefghijk")))
    assert scores.tolist() == [float(n) for n in range(1, 12)]
    assert sorted(len(r["prompts"]) for r in server.requests) == [1, 2, 2, 2, 2, 2]
    assert server.most_in_flight == 3
    first = next(r for r in server.requests if r["prompts"][0] == "p0")
    assert first == {"prompts": ["p0", "p1"], "responses": ["x", "xx"], "labels": [None, None],
                     "columns": {"topic": ["a", "b"]}}  # fmt: skip


def test_a_server_that_fails_for_a_while_is_retried_with_backoff(serve):
    server = serve(lambda body, attempt: (503, "busy") if attempt <= 2 else lengths(body, attempt))
    start = time.monotonic()
    scores = client(server.url, retries=2, backoff_s=0.2).scores(arguments(["ab", "c"]))
    assert scores.tolist() == [2.0, 1.0]
    assert len(server.requests) == 3
    assert time.monotonic() - start >= 0.2 + 0.4  # the waits before the two retries, doubling


def test_a_server_that_keeps_erroring_gives_one_error_naming_url_status_and_samples(serve):
    server = serve(lambda body, attempt: (500, "model crashed"))
    with pytest.raises(RewardError) as error:
        client(server.url, retries=2, batch_size=2).scores(arguments(["a", "b", "c"]))
    message = str(error.value)
    assert server.url in message
    assert "status 500 Internal Server Error (model crashed)" in message
    assert re.search(
        r"for samples (0-1|2-2) of 3 \(first response '[ac]'\), 3 attempts \(reward.server.retries = 2\)", message
    )
    assert len(server.requests) >= 3


def test_a_stalling_server_times_out_into_the_error(serve):
    server = serve(lengths, delay_s=2.0)
    start = time.monotonic()
    with pytest.raises(RewardError, match=r"no answer within reward.server.timeout_s = 0.3 s for samples 0-0 of 1"):
        client(server.url, timeout_s=0.3, retries=1).scores(arguments(["a"]))
    assert time.monotonic() - start < 1.5
    assert len(server.requests) == 2


def test_a_refused_request_is_not_retried(serve):
    server = serve(lambda body, attempt: (400, "bad request"))
    with pytest.raises(RewardError, match=r"status 400 Bad Request \(bad request\) for samples 0-0 of 1 .*not retried"):
        client(server.url).scores(arguments(["a"]))
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"scores": [1.0]}, "returned 1 values for 2 samples"),
        ({"scores": [1.0, float("nan")]}, r"no finite number for 1 sample\(s\): sample 1: nan for response 'bb'"),
        ({"score": 1.0}, r"not \{\"scores\": \[one number per sample\]\}"),
        ("<html>oops</html>", "which is not JSON"),
    ],
)
def test_a_wrong_answer_is_an_error_never_a_zero(serve, answer, message):
    server = serve(lambda body, attempt: (200, answer))
    with pytest.raises(RewardError, match=message):
        client(server.url).scores(arguments(["a", "bb"]))


def test_a_server_nobody_runs_fails_before_the_roles_start(closed_port):
    reward = RewardConfig(source="http", server=RewardServerConfig(url=f"http://127.0.0.1:{closed_port}/"))
    with pytest.raises(RewardServerUnreachable, match=f"reward.server.url=http://127.0.0.1:{closed_port}/: nothing"):
        check_reward_server(reward)


@pytest.mark.parametrize(
    ("reward", "field", "message"),
    [
        ({"source": "http"}, "reward.server.url", "is required when reward.source is 'http'"),
        ({"source": "http", "server": {"url": "judge:8000"}}, "reward.server.url", "is not an http:// or https:// URL"),
        ({"source": "http", "server": {"url": "http://judge:port/"}}, "reward.server.url", "Port could not be cast"),
        ({"server": {"url": "http://judge:8000/"}}, "reward.server.url", "set source to 'http'"),
        (
            {"source": "http", "server": {"url": "http://judge/"}, "function": "rlhf_ray.rewards.demo:concise"},
            "reward.function",
            "is set but reward.source is 'http'",
        ),
        ({"source": "http", "server": {"url": "http://judge/"}, "normalize": True}, "reward.normalize", "'http'"),
    ],
)
def test_the_config_names_what_is_wrong_with_the_server(reward, field, message):
    with pytest.raises(ConfigError) as error:
        validate_config(base(reward=reward))
    issues = {p.path: p.message for p in error.value.problems}
    assert message in issues[field]


def test_an_http_reward_runs_its_client_on_a_cpu_rank():
    cfg = validate_config(base(reward={"source": "http", "server": {"url": "http://judge:8000/"}}))
    assert not cfg.role_uses_accelerator("reward")


def test_the_server_validates_request_bodies():
    with pytest.raises(ValueError, match="2 prompts, but responses has 1, labels has 3"):
        ScoreRequest(prompts=["a", "b"], responses=["x"], labels=[None] * 3)
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        ScoreRequest(prompts=["a"], responses=["x"], rewards=[1.0])


def test_the_server_batches_requests_into_one_function_call():
    scorer = FunctionScorer(ServedReward("tests.support.reward_functions:times_difficulty"))
    requests = [
        ScoreRequest(prompts=["p"], responses=["ab"], columns={"difficulty": [3]}),
        ScoreRequest(prompts=["p", "q"], responses=["a", "abc"], columns={"difficulty": [1, 2]}),
    ]
    assert scorer.scores(merged(requests)) == [6.0, 1.0, 6.0]
