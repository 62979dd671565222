"""Tool-call ids and tool names between OpenAI clients and Mistral models.

Ids map deterministically to `^[a-zA-Z0-9]{9}$`; names to `^[a-zA-Z0-9_-]{1,64}$` and back.
"""

import re

from ..ids import derive_id, new_id

VALID_ID = re.compile(r"[a-zA-Z0-9]{9}")
VALID_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_BAD_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_-]")


class IdMap:
    """Call ids for one request: valid ones kept, others derived; never two calls alike."""

    __slots__ = ("used", "salts")

    def __init__(self) -> None:
        self.used: set[str] = set()
        self.salts: dict[str, int] = {}  # seed -> the last salt tried: a repeat starts past it

    def assign(self, original: str | None, position: str) -> str:
        """The id for a call; `position` seeds it when the client sent none."""
        if original and VALID_ID.fullmatch(original) and original not in self.used:
            self.used.add(original)
            return original
        seed = original or position
        salt = self.salts.get(seed, -1)
        new = derive_id(seed) if salt < 0 else ""
        while not new or new in self.used:
            salt += 1
            new = derive_id(f"{seed}#{salt}")
        self.salts[seed] = max(salt, 0)
        self.used.add(new)
        return new


class NameMap:
    """Tool names as the backend may see them, and the way back to the client's own."""

    __slots__ = ("to_backend", "to_client", "renamed", "counters")

    def __init__(self) -> None:
        self.to_backend: dict[str, str] = {}
        self.to_client: dict[str, str] = {}
        self.renamed = False  # some name differs between the two sides
        self.counters: dict[str, int] = {}  # sanitised base -> the last suffix number tried

    def backend(self, name: str) -> str:
        known = self.to_backend.get(name)
        if known is not None:
            return known
        if VALID_NAME.fullmatch(name) and name not in self.to_client:
            new = name
        else:
            base = _BAD_NAME_CHARS.sub("_", name)[:64] or "tool"
            new, n = base, self.counters.get(base, 1)
            while new in self.to_client:
                n += 1
                suffix = f"_{n}"
                new = base[: 64 - len(suffix)] + suffix
            self.counters[base] = n
        self.to_backend[name] = new
        self.to_client[new] = name
        if new != name:
            self.renamed = True
        return new

    def client(self, name: str) -> str:
        return self.to_client.get(name, name)


def client_call(call_id: str | None, name: str, arguments: str, names: NameMap) -> dict:
    """A raw call the model wrote, as an OpenAI tool call with the client's tool name."""
    return {
        "id": call_id if call_id and VALID_ID.fullmatch(call_id) else new_id(),
        "type": "function",
        "function": {"name": names.client(name), "arguments": arguments},
    }
