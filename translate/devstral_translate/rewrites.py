"""What a translation changed, reported by the translators themselves as they change it (never
a diff afterwards): one kind of rewrite a line, with how often and a first example.

A translator takes `notes: Rewrites | None`; None (the serving path's default) costs a test
at each rewrite, nothing else. `devstral-proxy translate` prints `lines()`; the access log
at DEBUG carries `counts()` (kinds and counts, never content).
"""

MAX_EXAMPLE = 120  # characters of an example kept (names and ids, never whole texts)
MAX_KINDS = 64  # kinds listed apart; beyond (kinds named after what a client sent), counted together


class Rewrites:
    """The rewrites of one request (or reply), in the order first seen."""

    __slots__ = ("seen",)

    def __init__(self) -> None:
        self.seen: dict[str, list] = {}  # kind -> [count, first example]

    def note(self, kind: str, example: str = "", times: int = 1) -> None:
        if kind not in self.seen and len(self.seen) >= MAX_KINDS:
            kind = "other rewrites"
        entry = self.seen.get(kind)
        if entry is None:
            self.seen[kind] = [times, example[:MAX_EXAMPLE]]
        else:
            entry[0] += times

    def __bool__(self) -> bool:
        return bool(self.seen)

    def counts(self) -> dict[str, int]:
        return {kind: entry[0] for kind, entry in self.seen.items()}

    def lines(self) -> list[str]:
        """One line a kind, in plain words: "tool call id rewritten (2): call_abc... -> Ab3dE9xYz"."""
        out = []
        for kind, (count, example) in self.seen.items():
            line = kind if count == 1 else f"{kind} ({count})"
            out.append(f"{line}: {example}" if example else line)
        return out
