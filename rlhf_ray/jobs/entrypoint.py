"""What a submitted job runs on the cluster: ``python -m rlhf_ray.jobs.entrypoint train CONFIG ...``
opens the variables ``rlhf-ray submit --env`` forwarded into this process's environment (the driver's:
W&B logs from here), then runs the ``rlhf-ray`` command with the same arguments."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from rlhf_ray.jobs.sealed_env import SEALED_ENV_VAR, cluster_token, unseal


def main(argv: Sequence[str] | None = None) -> int:
    sealed = os.environ.pop(SEALED_ENV_VAR, None)
    if sealed is not None:
        forwarded = unseal(sealed, cluster_token())
        os.environ.update(forwarded)
        print(f"forwarded environment variables: {', '.join(sorted(forwarded))}", file=sys.stderr)
    from rlhf_ray.cli import main as rlhf_ray_main

    return rlhf_ray_main(argv)


if __name__ == "__main__":
    sys.exit(main())
