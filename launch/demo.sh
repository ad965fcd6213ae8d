#!/usr/bin/env bash
# Set up the environment if needed, then run the main job on the CPU demo config.
# Extra arguments are dotted config overrides, e.g. `rollout.temperature=0.7`.
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
bash "$here/setup_env.sh"
source "$here/env.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/rlhf-ray" train configs/cpu_demo.yaml "$@"
