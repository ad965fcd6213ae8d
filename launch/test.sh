#!/usr/bin/env bash
# Set up the environment if needed, then run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
bash "$here/setup_env.sh"
source "$here/env.sh"
cd "$ROOT"
# PYTHONFAULTHANDLER: a native crash prints every thread's Python stack.
export RAY_AUTH_MODE=disabled WANDB_MODE=offline PYTHONFAULTHANDLER=1
# pytest exits 5 when it collects no test: that is a failure here, as is any other non-zero code.
exec "$PY" -m pytest "$@"
