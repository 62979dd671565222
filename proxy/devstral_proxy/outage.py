"""A Redis that stopped answering (the rate limits', the response store's): a pause in which it
is not asked, and one log line when an outage begins and one when it ends.
"""

import logging

from .clock import Clock

log = logging.getLogger("devstral_proxy")


class Outage:
    """`paused()` while Redis is not to be asked; `failed(exc)` after a call that did not get an
    answer, `answered()` after one that did. `what` names the user on its lines; `meanwhile`
    says what requests get during an outage, `after` what they get again (may be empty)."""

    __slots__ = ("what", "meanwhile", "after", "pause", "clock", "down_until", "active")

    def __init__(self, what: str, meanwhile: str, after: str, pause: float, clock: Clock) -> None:
        self.what, self.meanwhile, self.after = what, meanwhile, after
        self.pause = pause
        self.clock = clock
        self.down_until = 0.0  # monotonic: Redis is not asked before then
        self.active = False

    def paused(self) -> bool:
        return bool(self.down_until) and self.clock.monotonic() < self.down_until

    def failed(self, exc: BaseException) -> None:
        self.down_until = self.clock.monotonic() + self.pause
        if not self.active:
            self.active = True
            log.warning("%s: Redis does not answer (%s: %s); %s", self.what, type(exc).__name__, exc, self.meanwhile)

    def answered(self) -> None:
        self.down_until = 0.0
        if self.active:
            self.active = False
            log.warning("%s: Redis answers again%s", self.what, self.after)
