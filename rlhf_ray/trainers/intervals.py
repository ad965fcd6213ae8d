"""When periodic work (logging, evaluation, checkpoints) is due."""


def every(step: int, interval: int) -> bool:
    """Every ``interval`` steps; never when it is 0."""
    return interval > 0 and step % interval == 0
