"""The drivers: PPO (and its checkpoints)."""
