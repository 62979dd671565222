"""The proxy's one source of time, passed to every part that measures it (router ejection and
cooldown, health, the queue's waits, rate-limit windows and pauses, the sweep's deadlines).

Production reads the clocks of the machine; the unit tier passes a clock it moves by hand.
"""

import time


class Clock:
    """`monotonic()`: seconds for intervals and deadlines; `wall()`: seconds since the epoch
    (rate-limit windows shared through Redis, the Responses' created_at)."""

    __slots__ = ()

    monotonic = staticmethod(time.monotonic)
    wall = staticmethod(time.time)


SYSTEM = Clock()
