"""Shared by every test: offline, no Ray token auth, W&B offline."""

import os

# Set before anything imports transformers, ray or wandb.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
