"""Human feedback: the labelling web app (``rlhf-ray label serve``) whose rankings train the reward model."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from rlhf_ray.config.schema.base import PositiveInt, Section

MIN_RESPONSES, MAX_RESPONSES = 2, 9
"""How many responses a labeller ranks at once: a pick between two up to InstructGPT's nine."""


class FeedbackConfig(Section):
    """People rank a prompt's sampled responses in a browser; each judgement is appended to
    ``output_path``, which ``reward_model.data.train_path`` reads as it is (a ranking of K gives its
    K(K-1)/2 pairs, weighted so that each ranking counts once)."""

    model_path: str | None = None
    """Local HF model folder whose responses are ranked. None: the SFT stage's export
    (``sft.checkpoint.export_dir``)."""
    prompts_path: str | None = None
    """Prompts to label (JSONL, JSON or Parquet rows with ``data.prompt_key``, read as ``data`` says).
    None: ``data.train_path``, the built-in synthetic prompts when that is None too."""
    output_path: str = "outputs/feedback/rankings.jsonl"
    """The JSONL file every judgement is appended to; a restarted app continues where it stopped."""
    responses_per_prompt: Annotated[int, Field(ge=MIN_RESPONSES, le=MAX_RESPONSES)] = 4
    """K: responses sampled per prompt (``rollout`` says how) and ranked best to worst, ties allowed;
    2 asks for a pick of one."""
    target: PositiveInt = 100
    """Items (prompts with their responses) to label; the progress line counts towards it."""
    overlap: Annotated[float, Field(ge=0.0, le=1.0)] = 0.1
    """Share of the items shown to a second labeller, evenly spread, for the agreement figures of
    ``rlhf-ray label stats``."""
    prefetch: PositiveInt = 8
    """Items whose responses are sampled ahead, in batches, in the background."""
    lease_s: PositiveInt = 600
    """Seconds an item shown to a labeller stays theirs; after that an unanswered item goes to the next
    labeller who asks (an answer that comes later is still kept)."""
    host: str = "127.0.0.1"
    """Address the app listens on. Any other than a loopback address makes every request need the token
    printed at start."""
    port: Annotated[int, Field(ge=0, le=65535)] = 8765
    """Port the app listens on (0: any free port, printed at start)."""
