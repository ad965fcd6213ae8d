"""``rlhf-ray plot``: metrics files to a PNG, without W&B."""

import json
import struct

import pytest

from rlhf_ray.cli import EXIT_CONFIG_ERROR, main
from rlhf_ray.tracking.plots import (
    COLUMNS,
    DPI,
    PANEL_HEIGHT,
    PANEL_WIDTH,
    PlotError,
    Run,
    gold_vs_learned_figure,
    metrics_figure,
    plot_gold_vs_learned,
    read_metrics,
)


def write_metrics(path, records):
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def ppo_step(step, reward, gold=None):
    record = {
        "step": step,
        "rollout/reward_mean": reward,
        "train/kl_per_token": 0.1 * step,
        "rollout/response_length": 20.0 - step,
        "timing/generate": 0.5,
        "timing/forwards": 0.6,
        "timing/reward": 0.3,
        "timing/update": 0.7,
        "timing/policy_update": 0.6,
        "timing/weight_sync": 0.1,
        "timing/step": 2.0,
        "timing/generated_tokens_per_s": 100.0,
    }
    return record if gold is None else record | {"rollout/gold_reward": gold}


@pytest.fixture
def recovered_run(tmp_path):
    """Steps 1-3 with a gold reward, then steps 2 and 3 again, replayed after a recovery."""
    replayed = [ppo_step(2, 0.25, gold=0.2) | {"timing/recovery": 5.0}, ppo_step(3, 0.35, gold=0.3)]
    steps = [ppo_step(step, 0.1 * step, gold=0.0) for step in (1, 2, 3)]
    return write_metrics(tmp_path / "recovered.metrics.jsonl", steps + replayed)


@pytest.fixture
def plain_run(tmp_path):
    """Steps 1-3 without a gold reward."""
    return write_metrics(tmp_path / "plain.metrics.jsonl", [ppo_step(step, 0.5) for step in (1, 2, 3)])


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_the_last_record_of_a_step_counts(recovered_run):
    steps = read_metrics(recovered_run)
    assert list(steps) == [1, 2, 3]
    assert [steps[step]["rollout/reward_mean"] for step in steps] == [0.1, 0.25, 0.35]
    assert [steps[step]["rollout/gold_reward"] for step in steps] == [0.0, 0.2, 0.3]
    assert steps[2]["timing/recovery"] == 5.0


def test_the_time_split_is_of_the_steps_top_level_phases():
    run = Run("run", {1: ppo_step(1, 0.1) | {"timing/recovery": 5.0}, 2: ppo_step(2, 0.2) | {"timing/step": 3.0}})
    split = run.mean_phase_seconds()
    assert list(split) == ["generate", "forwards", "update", "weight_sync", "other"]
    assert split["forwards"] == pytest.approx(0.6)  # not its nested reward forward added
    assert split["other"] == pytest.approx(2.5 - 1.9)  # the mean step, less its phases


def test_runs_are_overlaid_and_the_png_written_next_to_the_first(recovered_run, plain_run, capsys):
    assert main(["plot", str(recovered_run), str(plain_run)]) == 0
    png = recovered_run.with_name("recovered.metrics.png")
    assert capsys.readouterr().out == f"{png}\n"
    assert png_size(png) == (COLUMNS * PANEL_WIDTH * DPI, 2 * PANEL_HEIGHT * DPI)


def test_each_panel_draws_what_the_runs_logged(recovered_run, plain_run):
    runs = [Run("recovered", read_metrics(recovered_run)), Run("plain", read_metrics(plain_run))]
    reward, kl, length, time_split = metrics_figure(runs).axes
    assert [ax.get_title() for ax in (reward, kl, length)] == ["reward", "KL per token", "response length (tokens)"]
    assert [text.get_text() for text in reward.get_legend().get_texts()] == [
        "recovered: rollout/reward_mean",
        "recovered: rollout/gold_reward",
        "plain: rollout/reward_mean",
    ]
    [recovered_reward, *_] = reward.get_lines()
    assert list(recovered_reward.get_ydata()) == [0.1, 0.25, 0.35]
    assert [label.get_text() for label in time_split.get_yticklabels()] == ["recovered\n2.00 s", "plain\n2.00 s"]


def test_labels_and_output_path_can_be_given(recovered_run, plain_run, tmp_path, capsys):
    output = tmp_path / "figures" / "compare.png"
    assert (
        main(["plot", str(recovered_run), str(plain_run), "--output", str(output), "--label", "a", "--label", "b"]) == 0
    )
    assert capsys.readouterr().out == f"{output}\n"
    assert png_size(output)[0] == COLUMNS * PANEL_WIDTH * DPI


def test_a_supervised_stage_file_plots_its_loss_and_accuracy(tmp_path, capsys):
    records = [{"step": 0, "eval/loss": 0.9, "eval/accuracy": 0.5}]
    records += [
        {"step": s, "train/loss": 1 / s, "train/accuracy": 0.6, "timing/update": 0.2, "timing/step": 0.3}
        for s in (1, 2)
    ]
    metrics = write_metrics(tmp_path / "rm.metrics.jsonl", records)
    assert [ax.get_title() for ax in metrics_figure([Run("rm", read_metrics(metrics))]).axes] == [
        "loss",
        "accuracy",
        "time per step, by phase (mean)",
    ]
    assert main(["plot", str(metrics)]) == 0
    assert png_size(tmp_path / "rm.metrics.png") == (COLUMNS * PANEL_WIDTH * DPI, 2 * PANEL_HEIGHT * DPI)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "{path}: No such file or directory"),
        (b'{"step": 1, "train/loss": 1.0}\n{"step": 2, "train/lo\n', "{path}:2: not JSON (Unterminated string"),
        (b'{"step": 1}\n[1, 2]\n', "{path}:2: not a metrics record (a JSON object with an integer 'step')"),
        (b"\n", "{path}: no steps logged"),
        (b"\x89PNG\r\n\x1a\n\xff\xd8", "{path}: not a text file"),
        (b'{"step": 1, "x": 1.0}\n', "nothing to plot: no run logged rewards, KL, response length"),
    ],
)
def test_bad_input_is_one_line_and_exits_2(tmp_path, capsys, content, message):
    path = tmp_path / "run.metrics.jsonl"
    if content is not None:
        path.write_bytes(content)
    assert main(["plot", str(path)]) == EXIT_CONFIG_ERROR
    err = capsys.readouterr().err
    assert err.startswith("plot: " + message.format(path=path))
    assert err.count("\n") == 1
    assert not path.with_suffix(".png").exists()


def test_labels_must_match_the_files(plain_run, capsys):
    assert main(["plot", str(plain_run), "--label", "a", "--label", "b"]) == EXIT_CONFIG_ERROR
    assert capsys.readouterr().err == "plot: 2 --label for 1 metrics files\n"


def test_the_gold_vs_learned_plot_lies_next_to_the_metrics_with_each_steps_last_record(recovered_run):
    png = plot_gold_vs_learned(recovered_run)
    assert png == recovered_run.with_name("recovered.gold_vs_learned.png")
    assert png_size(png) == (PANEL_WIDTH * DPI, PANEL_HEIGHT * DPI)
    [ax] = gold_vs_learned_figure(Run("recovered", read_metrics(recovered_run))).axes
    learned, gold = ax.get_lines()
    assert list(learned.get_xdata()) == list(gold.get_xdata()) == [1, 2, 3]
    assert list(learned.get_ydata()) == [0.1, 0.25, 0.35]
    assert list(gold.get_ydata()) == [0.0, 0.2, 0.3]
    assert [text.get_text() for text in ax.get_legend().get_texts()] == [
        "learned: rollout/reward_mean",
        "gold: rollout/gold_reward",
        "gap",
    ]


def test_the_gold_vs_learned_plot_needs_the_gold_reward(plain_run):
    with pytest.raises(PlotError, match="plain: no rollout/gold_reward logged"):
        plot_gold_vs_learned(plain_run)
    assert not plain_run.with_name("plain.gold_vs_learned.png").exists()
