"""Raw (unvalidated) configs of the config tests: a small valid CPU experiment to change one field of."""


def base(**sections) -> dict:
    raw = {
        "models": {"tiny": {"hidden_size": 64, "num_heads": 2, "intermediate_size": 128, "num_layers": 1}},
        "rollout": {"samples_per_prompt": 2},
        "data": {"prompts_per_step": 16},
        "train": {
            "policy": {"micro_batch_size": 4, "global_batch_size": 16},
            "critic": {"micro_batch_size": 4, "global_batch_size": 16},
        },
        "resources": {"device": "cpu"},
    }
    for name, value in sections.items():
        raw[name] = {**raw.get(name, {}), **value}
    return raw
