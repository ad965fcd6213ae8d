"""rlhf_ray: distributed RLHF (SFT, reward modelling, PPO) on Ray, DeepSpeed and vLLM."""

__version__ = "0.1.0"
