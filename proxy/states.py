"""The one check every state machine of the I/O half makes (Rx, Tx, Up, Ex): each machine's
`_to` looks its change up in its table (state -> bit mask of the states it may go to) inline,
on in production (a lookup and a shift), and calls `refused` for a change the table lacks.
"""


class StateError(RuntimeError):
    """A state change its machine's table does not allow: a bug, reported where it happens."""


def refused(machine: str, names: tuple, old: int, new: int):
    raise StateError(f"{machine}: {names[old]} -> {names[new]} is not a transition")
