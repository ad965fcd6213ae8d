"""The pipeline's closing report: the SFT and the PPO policy's answers side by side, each judged."""

import json

import pytest
import yaml

from rlhf_ray.cli import main
from rlhf_ray.data.simulated import LabelFiles
from rlhf_ray.trainers.report import JudgedAnswer, SideBySide, report_prompts, side_by_side, side_by_side_table
from tests.support.tiny_roles import role_config
from tests.trainers.test_generate_and_eval import greedy_reference, user

PROMPTS = ["Tell me about cats.", "Count the stars.", "Tell me about cats.", "Describe the river you see."]


def write_rows(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_each_prompt_shows_the_sft_answer_above_the_ppo_answer():
    rows = [
        SideBySide("Count the stars.", JudgedAnswer("The sad stars.", -1.0, -0.5), JudgedAnswer("happy", 1.0, 2.25)),
        SideBySide("Hi", JudgedAnswer("", 0.0, 0.125), JudgedAnswer("a\nwarm day", 0.5, 10.0)),
    ]
    assert side_by_side_table(rows).splitlines() == [
        "prompt            policy   gold  learned  answer",
        "Count the stars.  SFT     -1.00    -0.50  The sad stars.",
        "                  PPO      1.00     2.25  happy",
        "Hi                SFT      0.00     0.12",
        "                  PPO      0.50    10.00  a warm day",
    ]


def test_a_long_answer_is_cut_and_a_missing_gold_reward_is_a_dash():
    long = " ".join(["word"] * 20)
    row = SideBySide("Hi", JudgedAnswer(long, None, 1.0), JudgedAnswer("ok", None, 0.0))
    [_, sft, ppo] = side_by_side_table([row]).splitlines()
    assert sft == f"Hi      SFT         -     1.00  {long[:57]}..."
    assert ppo == "        PPO         -     0.00  ok"


def test_the_prompts_are_the_first_distinct_held_out_ones(tmp_path):
    held_out = write_rows(tmp_path / "held_out.jsonl", [{"question": text} for text in PROMPTS])
    cfg = role_config(tmp_path, data={"eval_path": str(held_out), "prompt_key": "question"})
    assert report_prompts(cfg, 3) == (str(held_out), ["Tell me about cats.", "Count the stars.", PROMPTS[3]])
    assert report_prompts(cfg, 10)[1] == ["Tell me about cats.", "Count the stars.", PROMPTS[3]]


def test_without_held_out_prompts_the_labellers_held_out_demonstrations_are_asked(tmp_path):
    cfg = role_config(tmp_path, labeller={"output_dir": str(tmp_path / "labels"), "demonstrations": 8, "pairs": 8})
    source, prompts = report_prompts(cfg, 4)
    held_out = LabelFiles.under(tmp_path / "labels").sft_eval
    assert source == str(held_out)
    demonstrated = [json.loads(line)["prompt"] for line in held_out.read_text().splitlines()]
    assert prompts == list(dict.fromkeys(demonstrated))[:4]


def test_without_either_the_training_prompts_are_asked(tmp_path):
    training = write_rows(tmp_path / "train.jsonl", [{"prompt": text} for text in PROMPTS])
    assert report_prompts(role_config(tmp_path, data={"train_path": str(training)}), 2) == (str(training), PROMPTS[:2])
    source, prompts = report_prompts(role_config(tmp_path), 2)
    assert source == "the synthetic prompt set" and len(set(prompts)) == 2


def test_both_policies_answer_greedily_and_each_answer_is_judged_as_eval_judges_it(tiny_paths, tmp_path, capsys):
    cfg = role_config(
        tmp_path,
        rollout={"engine": "vllm", "dtype": "float32", "max_new_tokens": 8},  # the report answers with hf
        reward={"source": "model", "gold_function": "tests.support.reward_functions:length"},
    )
    texts = PROMPTS[:2]
    rows = side_by_side(cfg, texts, tiny_paths.policy, tiny_paths.policy, tiny_paths.reward)
    assert [row.prompt for row in rows] == texts
    for text, row in zip(texts, rows, strict=True):
        assert row.sft == row.ppo  # one model, the same greedy answer
        assert row.sft.text == greedy_reference(tiny_paths.policy, [user(text)])
        config = tmp_path / "eval.yaml"
        config.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
        prompts, summary = write_rows(tmp_path / "one.jsonl", [{"prompt": text}]), tmp_path / "summary.json"
        assert (
            main(["eval", str(config), "--prompts", str(prompts), "--output", str(summary), "rollout.engine=hf"]) == 0
        )
        judged = json.loads(summary.read_text())["model"]
        assert row.sft.learned == pytest.approx(judged["reward_mean"])
        assert row.sft.gold == judged["gold_reward"] == len(row.sft.text)
