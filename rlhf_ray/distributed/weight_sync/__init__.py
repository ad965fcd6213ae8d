"""Moving policy weights to the rollout engines: the strategies (``strategies``), the bucketed collective
they share (``buckets``), and the vLLM worker side of it (``vllm_extension``)."""
