"""The labelling app's HTTP side: request bodies validated, the token when not on loopback, loopback host
names only on loopback, and headers that forbid inline scripts."""

import pytest
from fastapi.testclient import TestClient

from rlhf_ray.cli import EXIT_CONFIG_ERROR, main
from rlhf_ray.labelling.app import create_app
from rlhf_ray.labelling.server import Address
from rlhf_ray.labelling.store import read_judgements
from tests.support.labelling import made_up_session

TOKEN = "s3cret-token"


@pytest.fixture
def session(tmp_path):
    session = made_up_session(tmp_path / "j.jsonl", target=3)
    yield session
    session.close()


def client(session, token=None, loopback=True) -> TestClient:
    return TestClient(create_app(session, token, loopback), base_url="http://127.0.0.1")


def body(shown, **changes):
    judged = {"item": shown["index"], "digest": shown["digest"], "labeller": "ann", "ranking": [[1], [0, 2], [3]]}
    return judged | {"seconds": 1.5, **changes}


def test_a_judgement_is_kept_and_answered_with_the_next_item(session, tmp_path):
    app = client(session)
    shown = app.get("/api/item", params={"labeller": "ann"}).json()
    assert shown["item"]["prompt"] == "Prompt 0?" and shown["progress"] == {"done": 0, "target": 3, "yours": 0}
    reply = app.post("/api/judgements", json=body(shown["item"]))
    assert reply.status_code == 200
    assert reply.json()["item"]["index"] == 1 and reply.json()["progress"]["done"] == 1
    assert [row["ranking"] for row in read_judgements(tmp_path / "j.jsonl")] == [[[1], [0, 2], [3]]]
    again = app.post("/api/judgements", json=body(shown["item"]))  # sent twice: kept once
    assert again.status_code == 200 and len(read_judgements(tmp_path / "j.jsonl")) == 1


@pytest.mark.parametrize(
    ("changes", "status", "detail"),
    [
        ({"extra": 1}, 422, "Extra inputs are not permitted"),
        ({"labeller": "   "}, 422, "at least 1 character"),
        ({"labeller": "x" * 65}, 422, "at most 64 characters"),
        ({"flag": "unsafe"}, 422, "a ranking or a flag, not both"),
        ({"ranking": None, "flag": "boring"}, 422, "'unsafe' or 'nonsense'"),
        ({"ranking": [[0], [1], [2]]}, 422, "bad ranking"),
        ({"ranking": [[0], [1], [2], [9]]}, 422, "less than 9"),
        ({"ranking": [[0], [], [1, 2, 3]]}, 422, "at least 1 item"),
        ({"digest": "<script>"}, 422, "should match pattern"),
        ({"digest": "0" * 16}, 409, "not what the page showed"),
        ({"seconds": -1}, 422, "greater than or equal to 0"),
        ({"item": 7}, 404, "no item 7"),
    ],
)
def test_bad_judgements_are_refused_and_nothing_is_written(session, tmp_path, changes, status, detail):
    app = client(session)
    item = app.get("/api/item", params={"labeller": "ann"}).json()["item"]
    reply = app.post("/api/judgements", json=body(item, **changes))
    assert reply.status_code == status
    assert detail in str(reply.json()["detail"])
    assert read_judgements(tmp_path / "j.jsonl") == []


def test_an_oversized_body_is_refused_before_it_is_read(session):
    reply = client(session).post("/api/judgements", content=b"{" + b" " * 20000 + b"}")
    assert reply.status_code == 413


def test_off_loopback_every_api_call_needs_the_token(session):
    app = client(session, token=TOKEN, loopback=False)
    assert app.get("/api/item", params={"labeller": "ann"}).status_code == 401
    assert app.get("/api/stats", headers={"X-Label-Token": "wrong"}).status_code == 401
    assert app.get("/api/stats", headers={"X-Label-Token": TOKEN}).status_code == 200
    assert app.get("/").status_code == 200  # the page itself holds no data


def test_on_loopback_other_host_names_are_refused(session):
    app = client(session)
    assert app.get("/api/stats", headers={"Host": "attacker.example"}).status_code == 400
    assert app.get("/api/stats", headers={"Host": "localhost:8765"}).status_code == 200


def test_pages_forbid_inline_scripts(session):
    app = client(session)
    for path in ("/", "/stats", "/static/app.js"):
        reply = app.get(path)
        assert reply.status_code == 200
        assert "script-src 'self'" in reply.headers["content-security-policy"]
        assert reply.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    ("host", "loopback"), [("127.0.0.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False)]
)
def test_only_loopback_addresses_go_without_a_token(host, loopback):
    assert Address(host, 0).loopback is loopback


def test_label_serve_names_bad_settings_before_starting(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("models: {tiny: {output_dir: /nonexistent}}\nrollout: {temperature: 0}\n")
    overrides = ["sft.checkpoint.export_dir=null", "feedback.responses_per_prompt=10"]
    assert main(["label", "serve", str(config), *overrides]) == EXIT_CONFIG_ERROR
    assert "feedback.responses_per_prompt: Input should be less than or equal to 9" in capsys.readouterr().err
    assert main(["label", "serve", str(config), "sft.checkpoint.export_dir=null"]) == EXIT_CONFIG_ERROR
    err = capsys.readouterr().err
    assert "c.yaml:2: rollout.temperature: is 0: greedy decoding gives the 4 responses" in err
    assert "feedback.model_path: is required when there is no SFT export" in err
    assert main(["label", "serve", str(config), "rollout.temperature=1", "feedback.model_path=/no/model"]) == 2
    assert "label serve: feedback.model_path: the labelled model folder /no/model does not exist" in (
        capsys.readouterr().err
    )


def test_label_stats_prints_the_figures_or_names_the_problem(session, tmp_path, capsys):
    app = client(session)
    item = app.get("/api/item", params={"labeller": "ann"}).json()["item"]
    app.post("/api/judgements", json=body(item))
    assert main(["label", "stats", str(tmp_path / "j.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "ann" in out and "1 judgements of 1 items; flag rate 0.0%" in out
    assert main(["label", "stats", str(tmp_path / "missing.jsonl")]) == EXIT_CONFIG_ERROR
    assert "missing.jsonl: no such judgements file" in capsys.readouterr().err
