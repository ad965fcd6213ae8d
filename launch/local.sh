#!/usr/bin/env bash
# Train on this machine, on a local Ray cluster sized for the config:
#   bash launch/local.sh CONFIG [overrides]
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
bash "$here/setup_env.sh"
source "$here/env.sh"
exec "$ROOT/.venv/bin/rlhf-ray" train "$@"
