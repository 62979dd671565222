"""The one check every state machine of the I/O half makes (Rx, Tx, Up, Ex): each machine's
`_to` looks its change up in its table (state -> bit mask of the states it may go to), on in
production, and calls `refused` for a change the table lacks. On the per-request path the
check is written inline against `into(table, new)` (a shift and a test, no call).
"""


class StateError(RuntimeError):
    """A state change its machine's table does not allow: a bug, reported where it happens."""


def refused(machine: str, names: tuple, old: int, new: int):
    raise StateError(f"{machine}: {names[old]} -> {names[new]} is not a transition")


def into(table: tuple, new: int) -> int:
    """The bit mask of the states `table` lets go to `new`: `into(T, new) >> state & 1`."""
    return sum(1 << old for old, allowed in enumerate(table) if allowed >> new & 1)
