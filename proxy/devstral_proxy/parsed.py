"""What is decoded from a client's request: the parsed request the reader hands on, and what
routing reads of a body. msgspec Structs, kept apart from the modules that use them (a mypyc
build of those modules, tried in issue 24, needs their annotations left to msgspec)."""

import msgspec


class Request(msgspec.Struct, gc=False):
    """One parsed request, as the handlers read it (a msgspec Struct: made in C, untracked by
    the GC: what it holds cannot point back to it)."""

    method: bytes
    path: str
    query: bytes
    headers: list[tuple[bytes, bytes]]  # names lower-cased
    body: bytes
    keep_alive: bool
    http11: bool
    client: str

    def header(self, name: bytes) -> bytes | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None


class RoutingHead(msgspec.Struct):
    """What routing reads of a request body before a dialect translates it."""

    model: object = None
    user: object = None
    messages: msgspec.Raw = msgspec.Raw(b"null")  # left encoded: only its first bytes matter
    prompt: msgspec.Raw = msgspec.Raw(b"null")


routing_head = msgspec.json.Decoder(RoutingHead)


class Role(msgspec.Struct):
    role: object = None


raw_list = msgspec.json.Decoder(list[msgspec.Raw])
role = msgspec.json.Decoder(Role)
