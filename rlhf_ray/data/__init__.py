"""Data: the batch container passed between roles (datasets and samplers join it)."""

from rlhf_ray.data.batch import SequenceBatch, pack_sequences

__all__ = ["SequenceBatch", "pack_sequences"]
