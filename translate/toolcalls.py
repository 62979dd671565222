"""Tool calls between OpenAI clients and Mistral models: call ids, tool names, and the raw
`[TOOL_CALLS]` text a Mistral model writes when vLLM's tool parser is off or fails.

Ids map deterministically to `^[a-zA-Z0-9]{9}$`; names to `^[a-zA-Z0-9_-]{1,64}$` and back.
"""

import functools
import hashlib
import re

import msgspec

from .wire import DECODE_ERRORS

VALID_ID = re.compile(r"[a-zA-Z0-9]{9}")
VALID_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_BAD_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_-]")
_ALPHABET = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_TO_ALNUM = bytes(_ALPHABET[b % 62] for b in range(256))  # byte -> alphanumeric, in C


@functools.lru_cache(maxsize=16384)  # agents resend the same history every turn
def derive_id(seed: str) -> str:
    """A 9-character alphanumeric id that depends only on `seed`."""
    return hashlib.blake2b(seed.encode(), digest_size=9).digest().translate(_TO_ALNUM).decode()


class IdMap:
    """Call ids for one request: valid ones kept, others derived; never two calls alike."""

    __slots__ = ("used",)

    def __init__(self) -> None:
        self.used: set[str] = set()

    def assign(self, original: str | None, position: str) -> str:
        """The id for a call; `position` seeds it when the client sent none."""
        if original and VALID_ID.fullmatch(original) and original not in self.used:
            self.used.add(original)
            return original
        seed = original or position
        new = derive_id(seed)
        salt = 0
        while new in self.used:
            salt += 1
            new = derive_id(f"{seed}#{salt}")
        self.used.add(new)
        return new


class NameMap:
    """Tool names as the backend may see them, and the way back to the client's own."""

    __slots__ = ("to_backend", "to_client", "renamed")

    def __init__(self) -> None:
        self.to_backend: dict[str, str] = {}
        self.to_client: dict[str, str] = {}
        self.renamed = False  # some name differs between the two sides

    def backend(self, name: str) -> str:
        known = self.to_backend.get(name)
        if known is not None:
            return known
        if VALID_NAME.fullmatch(name) and name not in self.to_client:
            new = name
        else:
            base = _BAD_NAME_CHARS.sub("_", name)[:64] or "tool"
            new, n = base, 1
            while new in self.to_client:
                n += 1
                suffix = f"_{n}"
                new = base[: 64 - len(suffix)] + suffix
        self.to_backend[name] = new
        self.to_client[new] = name
        if new != name:
            self.renamed = True
        return new

    def client(self, name: str) -> str:
        return self.to_client.get(name, name)


# ---- raw [TOOL_CALLS] text
TOOL_CALLS = "[TOOL_CALLS]"
ARGS = "[ARGS]"
CALL_ID = "[CALL_ID]"
THINK = "[THINK]"
END_THINK = "[/THINK]"
CONTROL_TOKENS = (TOOL_CALLS, ARGS, CALL_ID, THINK, END_THINK)
_json = msgspec.json.Decoder()


def arguments_text(value) -> str:
    """`arguments` as the JSON string OpenAI clients expect."""
    if isinstance(value, str):
        return value
    if value is None:
        return "{}"
    return msgspec.json.encode(value).decode()


def parse_raw_calls(text: str) -> list[tuple[str | None, str, str]] | None:
    """The calls in the text after a `[TOOL_CALLS]` token: (id or None, name, arguments).

    Both formats: `[{"name": ..., "arguments": {...}}]` (v3/v7) and `name[ARGS]{...}`, or
    `name[CALL_ID]id[ARGS]{...}`, one per `[TOOL_CALLS]` (v11+). None when it is neither."""
    body = text.strip()
    if body.startswith(("[", "{")):
        try:
            doc = _json.decode(body)
        except DECODE_ERRORS:
            return None
        items = doc if isinstance(doc, list) else [doc]
        calls = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                return None
            call_id = item.get("id") if isinstance(item.get("id"), str) else None
            calls.append((call_id, item["name"], arguments_text(item.get("arguments"))))
        return calls
    calls = []
    for part in text.split(TOOL_CALLS):
        if not part.strip():
            continue
        head, sep, args = part.partition(ARGS)
        if not sep:
            return None
        name, _, call_id = head.partition(CALL_ID)
        name = name.strip()
        if not name:
            return None
        calls.append((call_id.strip() or None, name, args.strip() or "{}"))
    return calls or None


def split_think(text: str) -> tuple[str, str | None]:
    """(content, reasoning) of a text that may hold `[THINK]...[/THINK]`."""
    if THINK not in text and END_THINK not in text:
        return text, None
    reasoning = []
    content = []
    rest = text
    while rest:
        start = rest.find(THINK)
        if start == -1:
            end = rest.find(END_THINK)
            if end == -1:
                content.append(rest)
            else:  # a close without an open: what came before it was reasoning
                reasoning.append(rest[:end])
                content.append(rest[end + len(END_THINK) :])
            break
        content.append(rest[:start])
        rest = rest[start + len(THINK) :]
        end = rest.find(END_THINK)
        if end == -1:
            reasoning.append(rest)
            break
        reasoning.append(rest[:end])
        rest = rest[end + len(END_THINK) :]
    return "".join(content), "".join(reasoning)
