"""``rlhf-ray generate``, ``chat`` and ``eval`` on the tiny models, in this process (no Ray cluster)."""

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from rlhf_ray.cli import EXIT_CONFIG_ERROR, main
from rlhf_ray.models import load_causal_lm, load_tokenizer
from tests.support.tiny_roles import role_config

PROMPTS = ["Tell me about cats.", "Describe the river you see.", "What do you know about songs?"]
GREEDY_HF = ["--engine", "hf", "--temperature", "0", "--max-new-tokens", "8", "rollout.dtype=float32"]


def write_prompts(path, prompts):
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    return path


def greedy_reference(folder, messages, max_new_tokens=8):
    """The model's greedy answer to a conversation, by transformers' own ``generate``, one prompt at a time."""
    tokenizer = load_tokenizer(folder, "left")
    model = load_causal_lm(folder, "float32").eval()
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


def user(text):
    return {"role": "user", "content": text}


def test_generate_writes_each_prompts_greedy_responses(tiny_paths, tmp_path, capsys):
    prompts = write_prompts(tmp_path / "prompts.jsonl", PROMPTS)
    output = tmp_path / "out.jsonl"
    args = ["generate", tiny_paths.policy, "--prompts", str(prompts), "--n", "2", "--output", str(output)]
    assert main([*args, *GREEDY_HF]) == 0
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(rows) == 6
    for prompt, pair in zip(PROMPTS, (rows[0:2], rows[2:4], rows[4:6]), strict=True):
        expected = greedy_reference(tiny_paths.policy, [user(prompt)])
        for row in pair:
            assert row["prompt"] == f"<s><|user|>\n{prompt}</s><|assistant|>\n"  # what the model saw
            assert row["response"] == expected
            assert row["finish_reason"] in ("stop", "length")
    assert "generate: 6 responses to 3 prompts" in capsys.readouterr().err


def test_generate_samples_reproducibly_from_the_seed(tiny_paths, tmp_path, capsys):
    prompts = write_prompts(tmp_path / "prompts.jsonl", PROMPTS)

    def responses(seed):
        args = ["generate", tiny_paths.policy, "--prompts", str(prompts), "--engine", "hf", "--seed", str(seed)]
        assert main([*args, "--max-new-tokens", "8", "--no-chat-template"]) == 0
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [row["prompt"] for row in rows] == PROMPTS  # plain text without the chat template
        return [row["response"] for row in rows]

    assert responses(1) == responses(1)
    assert responses(1) != responses(2)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["/no/such/model"], "generate: MODEL_FOLDER: the policy model folder /no/such/model does not exist"),
        (["{policy}", "--max-new-tokens", "2000"], "rollout.max_new_tokens: is 2000, which leaves no room"),
        (["{policy}", "--prompts", "{tmp}/missing.jsonl"], "missing.jsonl: no such file or folder"),
        (["{policy}", "--prompts", "{tmp}/bad.jsonl"], "bad.jsonl:2: missing key: no 'prompt'"),
    ],
)
def test_generate_names_bad_input_in_one_line(tiny_paths, tmp_path, capsys, arguments, message):
    (tmp_path / "bad.jsonl").write_text('{"prompt": "Hi"}\n{"question": "Hi"}\n')
    arguments = [a.format(policy=tiny_paths.policy, tmp=tmp_path) for a in arguments]
    if "--prompts" not in arguments:
        arguments += ["--prompts", str(write_prompts(tmp_path / "ok.jsonl", PROMPTS))]
    assert main(["generate", *arguments, "--engine", "hf"]) == EXIT_CONFIG_ERROR
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) <= 2  # one line; a config problem's heading and its line


def test_chat_answers_each_turn_with_the_conversation_so_far(tiny_paths, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("Hello\nTell me about cats.\n/reset\nHello\n/quit\nnever read\n"))
    assert main(["chat", tiny_paths.policy, *GREEDY_HF]) == 0
    first = greedy_reference(tiny_paths.policy, [user("Hello")])
    second = greedy_reference(
        tiny_paths.policy, [user("Hello"), {"role": "assistant", "content": first}, user("Tell me about cats.")]
    )
    assert capsys.readouterr().out == f"{first}\n{second}\n(conversation reset)\n{first}\n"


@pytest.fixture
def eval_config(tiny_dir, tmp_path):
    """A config of the tiny models (its policy the default model judged) with held-out prompts, as YAML."""

    def write(**sections):
        cfg = role_config(tiny_dir, rollout={"engine": "hf", "dtype": "float32", "max_new_tokens": 8}, **sections)
        path = tmp_path / "eval.yaml"
        path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
        return str(path)

    return write


def test_a_model_against_itself_wins_half_judged_by_the_reward_model(eval_config, tiny_paths, tmp_path, capsys):
    prompts = write_prompts(tmp_path / "held_out.jsonl", PROMPTS)
    config = eval_config(
        data={"eval_path": str(prompts)}, reward={"source": "model", "gold_function": "rlhf_ray.rewards.demo:concise"}
    )
    summary = tmp_path / "summary.json"
    assert main(["eval", config, "--baseline", tiny_paths.policy, "--output", str(summary)]) == 0
    report = json.loads(summary.read_text())
    assert report["prompts"] == 3 and report["decoding"] == "greedy"
    assert report["win_rate"] == 0.5
    assert report["model"]["reward_mean"] == report["baseline"]["reward_mean"] != 0.0  # the tiny head is random
    assert 0.0 <= report["model"]["gold_reward"] <= 1.0
    assert report["model"]["pass_at_k"] is None
    out = capsys.readouterr().out
    assert "3 prompts from" in out and "win_rate" in out and "0.5000" in out


def test_eval_scores_the_responses_generate_writes(eval_config, tiny_paths, tmp_path, capsys):
    prompts = write_prompts(tmp_path / "held_out.jsonl", PROMPTS)
    config = eval_config(reward={"source": "function", "function": "tests.support.reward_functions:length"})
    summary = tmp_path / "summary.json"
    assert main(["eval", config, "--prompts", str(prompts), "--output", str(summary)]) == 0
    output = tmp_path / "out.jsonl"
    assert main(["generate", tiny_paths.policy, "--prompts", str(prompts), "--output", str(output), *GREEDY_HF]) == 0
    lengths = [len(json.loads(line)["response"]) for line in output.read_text().splitlines()]
    assert json.loads(summary.read_text())["model"]["reward_mean"] == pytest.approx(sum(lengths) / len(lengths))


def test_pass_at_k_counts_the_prompts_whose_samples_pass(eval_config, tmp_path, capsys):
    marked = ["PASS: Tell me about cats.", "Tell me about dogs.", "PASS: Count the stars.", "Hi", "Describe a song."]
    prompts = write_prompts(tmp_path / "held_out.jsonl", marked)
    config = eval_config(reward={"source": "function", "function": "tests.support.reward_functions:marked_pass"})
    summary = tmp_path / "summary.json"
    assert main(["eval", config, "--prompts", str(prompts), "--samples", "3", "--output", str(summary)]) == 0
    report = json.loads(summary.read_text())
    assert report["samples"] == 3 and report["decoding"] == "temperature 1"
    assert report["model"]["pass_at_k"] == {"1": 0.4, "2": 0.4, "3": 0.4}
    out = capsys.readouterr().out
    assert "5 prompts from" in out and "3 responses at temperature 1 each" in out and "pass@3" in out
    args = ["eval", config, "--prompts", str(prompts), "--samples", "3", "--output", str(summary)]
    assert main([*args, "--pass-threshold", "1"]) == 0
    assert json.loads(summary.read_text())["model"]["pass_at_k"] == {"1": 0.0, "2": 0.0, "3": 0.0}


def test_eval_names_missing_prompts_and_folders(eval_config, tiny_paths, tmp_path, capsys):
    config = eval_config(reward={"source": "function", "function": "rlhf_ray.rewards.demo:concise"})
    assert main(["eval", config]) == EXIT_CONFIG_ERROR
    assert "eval: data.eval_path: not set; set it or pass --prompts FILE" in capsys.readouterr().err
    prompts = str(write_prompts(tmp_path / "held_out.jsonl", PROMPTS))
    assert main(["eval", config, "--prompts", prompts, "--baseline", "/no/baseline"]) == EXIT_CONFIG_ERROR
    assert "eval: --baseline: the baseline model folder /no/baseline does not exist" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.vllm
def test_vllm_generates_the_greedy_responses_of_the_hf_engine(tiny_paths, tmp_path, capsys):
    prompts = write_prompts(tmp_path / "prompts.jsonl", PROMPTS)
    args = ["generate", tiny_paths.policy, "--prompts", str(prompts), "--temperature", "0", "--max-new-tokens", "8"]
    assert main([*args, "--engine", "hf", "rollout.dtype=float32"]) == 0
    hf_rows = capsys.readouterr().out
    # In a process of its own: vLLM changes process-wide settings (torch threads, environment) where it runs.
    script = Path(sys.executable).with_name("rlhf-ray")
    run = subprocess.run(
        [script, *args, "--engine", "vllm", "rollout.dtype=float32", "rollout.cpu_kv_cache_bytes=16777216"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == hf_rows
    assert "generate: 3 responses to 3 prompts" in run.stderr and "vllm engine" in run.stderr
