"""The one check every state machine of the I/O half makes (Rx, Tx, Up, Ex): a change of
state is allowed by the machine's table (state -> bit mask of the states it may go to).
"""


class StateError(RuntimeError):
    """A state change its machine's table does not allow: a bug, reported where it happens."""


def moved(machine: str, names: tuple, table: tuple, old: int, new: int) -> int:
    """`new` when `old` -> `new` is in `table`, else StateError (each machine's `_to`)."""
    if table[old] >> new & 1:
        return new
    raise StateError(f"{machine}: {names[old]} -> {names[new]} is not a transition")
