"""Tasks the proxy starts, kept referenced until they finish (the event loop holds tasks only
weakly), and a request handler that runs as a task and follows its connection's fate.

Tasks are used where waiting is the point (a fetch, Redis); the relay itself is callbacks.
"""

import asyncio
from collections.abc import Coroutine

from .errors import Failure

_running: set[asyncio.Task] = set()


def background(coro: Coroutine, loop=None) -> asyncio.Task:
    """Start `coro` as a task that cannot be collected before it is done."""
    task = (loop or asyncio.get_running_loop()).create_task(coro)
    _running.add(task)
    task.add_done_callback(_running.discard)
    return task


class TaskHandler:
    """A handler running as a task: the client leaving cancels it."""

    __slots__ = ("task",)
    abandonable = False  # a half-close does not end it (a model list, a store read)

    def __init__(self, task: asyncio.Task) -> None:
        self.task = task

    def cancel(self) -> None:
        self.task.cancel()

    def pause(self) -> None:
        pass

    def resume(self) -> None:
        pass

    def expire(self, now: float) -> None:
        pass


def spawn(cycle, coro: Coroutine, log_error) -> None:
    """Answer the request of `cycle` by `coro`; a bug in it still gets a 500."""

    async def run() -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log_error("handler failed", exc)
            if cycle.waiting and cycle.handler in (None, handler):
                cycle.fail(Failure(500, "The proxy failed to handle the request.", "internal_error"))
        finally:
            cycle.detach(handler)

    handler = TaskHandler(background(run()))
    cycle.attach(handler)
