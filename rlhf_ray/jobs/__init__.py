"""Running rlhf_ray on a Ray cluster through the Ray Jobs API: what a submission sends, the job server
client with clear errors, the job's entrypoint on the cluster, and the ``submit`` and ``jobs`` commands."""
