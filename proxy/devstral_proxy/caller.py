"""Who is calling: one identity per request, resolved once at admission and read by all that
keys on a client (rate limits, queue flows and classes, shares, stored responses, logs).

A validated API key when authentication is on (whichever header carried it), else the
client's address (after trusted_proxies): never a header that nothing validated.
"""

import hashlib


def key_id(key: bytes) -> str:
    """A key's identity: a digest (keys are never stored or logged)."""
    return "k" + hashlib.sha256(key).hexdigest()[:24]


class Caller:
    """`id`: "k<digest>" for a key, "a<address>" without one. `key`: the validated key or
    None. `address`: the client's. `forwarded_for`: the X-Forwarded-For sent on."""

    __slots__ = ("id", "key", "address", "forwarded_for", "models", "tier")

    def __init__(self, address: str, key: bytes | None = None, kid: str = "", forwarded_for: bytes = b"") -> None:
        self.key = key
        self.address = address
        self.id = kid or (key_id(key) if key else "a" + address)
        self.forwarded_for = forwarded_for or address.encode()
        self.models: frozenset | None = None  # the client models a token allows (None: any)
        self.tier: str | None = None  # a token's tier: its rate limits ([rate_limit.tiers]) and queue class

    def owner(self) -> bytes:
        """Who may read what this caller stored: a digest of its identity."""
        return hashlib.blake2b(self.id.encode(), digest_size=12).digest()
