"""The ``rlhf-ray`` command."""

import subprocess
import sys
from pathlib import Path

import yaml

from rlhf_ray.cli import EXIT_CONFIG_ERROR, main

DEMO = Path(__file__).resolve().parents[1] / "configs" / "cpu_demo.yaml"


def test_validate_prints_the_resolved_config(capsys):
    assert main(["validate", str(DEMO), "rollout.temperature=0.5"]) == 0
    out, err = capsys.readouterr()
    resolved = yaml.safe_load(out)
    assert resolved["rollout"]["temperature"] == 0.5
    assert resolved["rollout"]["top_p"] == 1.0  # a default, filled in
    assert "valid; roles: policy, critic, reference, reward" in err


def test_validate_lists_every_problem_and_exits_2(tmp_path, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_text(DEMO.read_text().replace("temperature: 1.0", "temperature: hot"))
    assert main(["validate", str(broken), "rollout.top_p=0"]) == EXIT_CONFIG_ERROR
    out, err = capsys.readouterr()
    assert out == ""
    line = next(i for i, text in enumerate(broken.read_text().splitlines(), 1) if "temperature: hot" in text)
    assert f"{broken}:{line}: rollout.temperature: Input should be a valid number" in err
    assert "override 'rollout.top_p=0': rollout.top_p: Input should be greater than 0" in err


def test_console_script_is_installed():
    script = Path(sys.executable).with_name("rlhf-ray")
    result = subprocess.run([script, "validate", DEMO, "resources.num_cpus=1"], capture_output=True, text=True)
    assert result.returncode == EXIT_CONFIG_ERROR
    assert "resources.num_cpus: 1 logical CPUs, but the roles need 4" in result.stderr
