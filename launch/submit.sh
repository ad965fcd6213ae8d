#!/usr/bin/env bash
# Submit `rlhf-ray train CONFIG [overrides]` to a Ray cluster as a job and follow its logs; the exit
# code is the job's outcome. The job server is $RAY_API_SERVER_ADDRESS, by default the head that
# cluster/local_cluster.sh starts on this machine. Other `rlhf-ray submit` options may come first (the
# demo's output folders are relative, so they land in the job's copy of the working directory):
#   bash launch/submit.sh --allow-relative-outputs --env WANDB_API_KEY configs/cpu_demo.yaml train.max_steps=5
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
bash "$here/setup_env.sh"
source "$here/env.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/rlhf-ray" submit --address "${RAY_API_SERVER_ADDRESS:-http://127.0.0.1:8265}" --follow "$@"
