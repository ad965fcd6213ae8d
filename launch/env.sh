# Environment shared by the launch scripts: every cache under one git-ignored folder.
# Source it; it defines ROOT and PY.
# shellcheck shell=bash disable=SC2034  # ROOT and PY are for the scripts that source it
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$ROOT/.venv/bin/python"
export RLHF_RAY_CACHE="${RLHF_RAY_CACHE:-$ROOT/.cache}"
export PIP_CACHE_DIR="$RLHF_RAY_CACHE/pip"
export XDG_CACHE_HOME="$RLHF_RAY_CACHE/xdg"
export HF_HOME="$RLHF_RAY_CACHE/huggingface"
export TORCH_EXTENSIONS_DIR="$RLHF_RAY_CACHE/torch_extensions"
export TRITON_CACHE_DIR="$RLHF_RAY_CACHE/triton"
export VLLM_CACHE_ROOT="$RLHF_RAY_CACHE/vllm"
export WANDB_CACHE_DIR="$RLHF_RAY_CACHE/wandb/cache"
export WANDB_CONFIG_DIR="$RLHF_RAY_CACHE/wandb/config"
export WANDB_DATA_DIR="$RLHF_RAY_CACHE/wandb/data"
# No model or dataset is fetched at run time: models are local folders or built offline.
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
export TOKENIZERS_PARALLELISM="${TOKENIZERS_PARALLELISM:-false}"
export VLLM_LOGGING_LEVEL="${VLLM_LOGGING_LEVEL:-ERROR}"
