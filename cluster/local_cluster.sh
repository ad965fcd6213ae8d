#!/usr/bin/env bash
# A Ray cluster of this one machine, to submit jobs to (`rlhf-ray submit`, launch/submit.sh) and to
# debug on (`ray debug`). The head's dashboard and job server listen on loopback. Submitted jobs run
# with this checkout's .venv and caches (launch/env.sh).
#
#   bash cluster/local_cluster.sh start [more `ray start` options, e.g. --num-cpus 8 --block]
#   bash cluster/local_cluster.sh stop
#
# RAY_HEAD_PORT (6379), RAY_DASHBOARD_HOST (127.0.0.1) and RAY_DASHBOARD_PORT (8265) change where it
# listens. With RAY_AUTH_MODE=token (the token in RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or
# ~/.ray/auth_token, e.g. from `ray get-auth-token --generate`) every client must present the token.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../launch/env.sh"
# The `python` a submitted job's entrypoint runs.
export PATH="$ROOT/.venv/bin:$PATH"

case "${1:-}" in
    start)
        shift
        exec ray start --head \
            --port "${RAY_HEAD_PORT:-6379}" \
            --dashboard-host "${RAY_DASHBOARD_HOST:-127.0.0.1}" \
            --dashboard-port "${RAY_DASHBOARD_PORT:-8265}" \
            --disable-usage-stats \
            "$@"
        ;;
    stop)
        exec ray stop
        ;;
    *)
        echo "usage: bash cluster/local_cluster.sh start [ray start options] | stop" >&2
        exit 2
        ;;
esac
