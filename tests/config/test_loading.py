"""YAML loading, dotted overrides and error locations."""

from pathlib import Path

import pytest

from rlhf_ray.config import ConfigError, dump_config, load_config

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))

TINY = """\
name: t
models:
  tiny: {hidden_size: 64, num_heads: 2, intermediate_size: 128, num_layers: 1}
rollout:
  samples_per_prompt: 2
  temperature: 0.9
train:
  policy: {micro_batch_size: 4, global_batch_size: 16}
  critic: {micro_batch_size: 4, global_batch_size: 16}
resources:
  device: cpu
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


def problems(exc: pytest.ExceptionInfo[ConfigError]) -> dict[str, str]:
    return {p.path: f"{p.where}: {p.message}" for p in exc.value.problems}


def test_ships_several_configs():
    assert {p.name for p in CONFIGS} >= {"cpu_demo.yaml"}
    assert len(CONFIGS) >= 3


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_validates(path):
    cfg = load_config(path)
    assert cfg.name


def test_values_come_from_file_and_defaults(tmp_path):
    cfg = load_config(write(tmp_path, TINY))
    assert cfg.rollout.temperature == 0.9
    assert cfg.rollout.top_p == 1.0
    assert cfg.models.tiny.hidden_size == 64
    assert cfg.train.critic.lr == 5e-6


def test_overrides_are_parsed_as_yaml_and_win(tmp_path):
    cfg = load_config(
        write(tmp_path, TINY),
        ["rollout.temperature=0.7", "rollout.stop_token_ids=[3, 4]", "logging.wandb.mode=disabled", "seed=7"],
    )
    assert cfg.rollout.temperature == 0.7
    assert cfg.rollout.stop_token_ids == [3, 4]
    assert cfg.logging.wandb.mode == "disabled"
    assert cfg.seed == 7


def test_override_can_create_a_section(tmp_path):
    cfg = load_config(write(tmp_path, TINY), ["algorithm.kl.coef=0"])
    assert cfg.algorithm.kl.coef == 0
    assert "reference" not in cfg.active_roles()


def test_unknown_key_names_file_and_line(tmp_path):
    path = write(tmp_path, TINY.replace("  temperature: 0.9", "  temprature: 0.9"))
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert problems(exc) == {
        "rollout.temprature": f"{path}:6: unknown key (check the spelling against `rlhf-ray validate` output)"
    }


def test_bad_value_names_line_and_value(tmp_path):
    path = write(tmp_path, TINY.replace("temperature: 0.9", "temperature: -1"))
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    [problem] = exc.value.problems
    assert problem.path == "rollout.temperature"
    assert problem.where == f"{path}:6"
    assert "greater than or equal to 0" in problem.message and "-1" in problem.message


def test_every_schema_error_is_reported_at_once(tmp_path):
    path = write(tmp_path, TINY + "seed: abc\nlogging: {wandb: {mode: sometimes}}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path, ["rollout.top_p=2"])
    assert set(problems(exc)) == {"seed", "logging.wandb.mode", "rollout.top_p"}
    assert problems(exc)["rollout.top_p"].startswith("override 'rollout.top_p=2'")
    assert problems(exc)["logging.wandb.mode"].startswith(f"{path}:13")


def test_unknown_override_is_named(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, TINY), ["rollout.temprature=0.5"])
    assert problems(exc)["rollout.temprature"].startswith("override 'rollout.temprature=0.5': unknown key")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("rollout.temperature", "must look like 'section.field=value'"),
        ("rollout..x=1", "must look like 'section.field=value'"),
        ("name.x=1", "is a value, not a section"),
        ("rollout.temperature=[1", "not valid YAML"),
    ],
)
def test_malformed_override(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, TINY), [override])


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = write(tmp_path, TINY + "rollout: [unclosed\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    [problem] = exc.value.problems
    assert problem.where == f"{path}:13" and "not valid YAML" in problem.message


def test_top_level_must_be_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the config"):
        load_config(tmp_path / "nope.yaml")


def test_cross_field_problem_points_at_the_field_or_its_section(tmp_path):
    path = write(tmp_path, TINY.replace("samples_per_prompt: 2", "samples_per_prompt: 1"))
    with pytest.raises(ConfigError) as exc:
        load_config(path, ["algorithm.advantage_estimator=rloo", "algorithm.kl.controller=adaptive"])
    found = problems(exc)
    assert found["rollout.samples_per_prompt"].startswith(f"{path}:5: advantage estimator 'rloo'")
    assert found["algorithm.kl.target"] == f"{path} (default): is required by the adaptive KL controller"


def test_dump_round_trips(tmp_path):
    cfg = load_config(write(tmp_path, TINY), ["rollout.top_k=5"])
    again = load_config(write(tmp_path, dump_config(cfg)))
    assert again == cfg
