#!/usr/bin/env bash
# Debug mode: CONFIG shrunk to a quick run of every role on this machine, verbose, with Ray's
# debugger on (README.md, "Debugging"). Overrides apply on top of the debug overlay:
#   bash launch/debug.sh CONFIG [overrides]
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
bash "$here/setup_env.sh"
source "$here/env.sh"
exec "$ROOT/.venv/bin/rlhf-ray" train --debug "$@"
