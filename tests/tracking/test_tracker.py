"""What the console progress line shows of a step's metrics."""

from rlhf_ray.tracking import Tracker
from tests.support.tiny_roles import role_config


def test_the_progress_line_shows_the_kl_per_token_not_per_sequence(tmp_path):
    cfg = role_config(tmp_path, logging={"dir": str(tmp_path), "wandb": {"mode": "disabled"}})
    tracker = Tracker(cfg, "run", total_steps=3)
    tracker.log(1, {"rollout/reward_mean": 0.25, "train/kl": 12.0, "train/kl_per_token": 0.5})
    [task] = tracker.progress.tasks
    tracker.finish()
    assert task.fields["summary"] == "reward 0.250  kl/token 0.500"
