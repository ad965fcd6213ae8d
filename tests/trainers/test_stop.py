"""SIGTERM / SIGINT: the first asks for a stop at the step boundary; a second, or the deadline, abandons
the step under way."""

import os
import signal
import time

import pytest

from rlhf_ray.trainers.stop import Abandoned, StopRequest


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT])
def test_the_first_signal_asks_to_stop_and_a_second_abandons_the_step(number):
    with StopRequest(deadline_s=60) as stop:
        assert not stop.requested
        os.kill(os.getpid(), number)
        assert stop.requested and stop.signal == number
        with pytest.raises(Abandoned, match=f"{number.name} again"):
            os.kill(os.getpid(), number)
            time.sleep(1)  # the handler runs in the main thread, here
    assert signal.getsignal(number) is not stop._receive  # the previous handler is back


def test_a_step_not_done_by_the_deadline_is_abandoned():
    with StopRequest(deadline_s=0.2), pytest.raises(Abandoned, match="not done 0.2 s after SIGTERM"):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
