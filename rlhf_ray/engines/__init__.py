"""Engines the roles wrap: DeepSpeed training and inference, learning-rate schedules, rollout engines."""
