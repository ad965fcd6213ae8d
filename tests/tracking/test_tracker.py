"""What the console progress line shows of a step's metrics."""

import json

from rlhf_ray.tracking import Tracker
from tests.support.tiny_roles import role_config


def test_the_progress_line_shows_the_kl_per_token_not_per_sequence(tmp_path):
    cfg = role_config(tmp_path, logging={"dir": str(tmp_path), "wandb": {"mode": "disabled"}})
    tracker = Tracker(cfg, "run", total_steps=3)
    tracker.log(1, {"rollout/reward_mean": 0.25, "train/kl": 12.0, "train/kl_per_token": 0.5})
    [task] = tracker.progress.tasks
    tracker.finish()
    assert task.fields["summary"] == "reward 0.250  kl/token 0.500"


def test_after_a_recovery_replayed_steps_go_to_the_metrics_file_but_dashboards_keep_the_first(tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = role_config(
        # W&B disabled: an offline run here would leave WANDB_SERVICE set for the runs later tests start.
        tmp_path,
        logging={"dir": str(tmp_path), "wandb": {"mode": "disabled"}, "tensorboard_dir": str(tmp_path / "tb")},
    )
    tracker = Tracker(cfg, "run", total_steps=3)
    for step in (1, 2, 3):
        tracker.log(step, {"x": float(step)})
    details = {"role": "critic", "rank": 0, "phase": "update"}
    tracker.recovery("recovery 1 of at most 3: critic rank 0 died", details, resumes_after=1)
    for step in (2, 3):
        tracker.log(step, {"x": 10.0 * step})
    tracker.finish()
    assert "recovery 1 of at most 3: critic rank 0 died" in capsys.readouterr().out
    assert tracker.recoveries == [[3, 1, "critic", 0, "update"]]
    records = [json.loads(line) for line in (tmp_path / "run.metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["x"]) for r in records] == [(1, 1.0), (2, 2.0), (3, 3.0), (2, 20.0), (3, 30.0)]
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("x")] == [(1, 1.0), (2, 2.0), (3, 3.0)]
