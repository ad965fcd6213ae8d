#!/usr/bin/env bash
# Set up the environment if needed, then run the main job: the three-stage pipeline (SFT -> reward model ->
# PPO) on the CPU config with simulated labellers, every stage afresh (`--force sft`), ending with the SFT
# and the PPO policy's answers side by side and a plot of the gold against the learned reward.
# Extra arguments are dotted config overrides, e.g. `train.max_steps=40`, or `--force ppo` to rerun PPO
# only, on the SFT and reward models of the previous run.
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
bash "$here/setup_env.sh"
source "$here/env.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/rlhf-ray" pipeline configs/cpu_pipeline.yaml --force sft "$@"
