"""Weighted model routing (an A/B split): a model_mapping entry that names several models with
weights sends each caller to one of them, the same one every time.

The choice is weighted rendezvous hashing (balance.score) of the caller's key (its
`X-Session-ID`, else its identity) and the client's model name: sticky without any state, the
same on every proxy instance, and a change of weights on reload moves only the share that
must move. The client always sees the model name it sent.
"""

import msgspec

from .balance import score
from .parsed import routing_head


class Variant:
    """One model of a split: the mapping that sends the client's name to it, its pinned
    backends (empty: any that serves it) and the header that names it on the reply."""

    __slots__ = ("model", "weight", "backends", "map", "header")

    def __init__(self, client: str, cfg) -> None:
        self.model: str = cfg.model
        self.weight: float = cfg.weight
        self.backends = frozenset(cfg.backends)
        self.map = {client: cfg.model}
        self.header = b"x-devstral-variant: %s\r\n" % cfg.model.encode("ascii", "backslashreplace")

    def excluded(self, backends: list) -> tuple:
        """The backends this variant may not use."""
        return tuple(b for b in backends if b.name not in self.backends) if self.backends else ()


class Splits:
    """`config.model_splits()`: client model -> its variants (config.Variant)."""

    def __init__(self, splits: dict) -> None:
        self.by_model = {client: [Variant(client, v) for v in variants] for client, variants in splits.items()}

    def assign(self, cycle) -> None:
        """The variant of a request whose model is split: by its X-Session-ID, else its
        caller's identity; named on the reply (x-devstral-variant) and in the access line."""
        try:
            model = routing_head.decode(cycle.body).model
        except (msgspec.DecodeError, UnicodeDecodeError):
            return  # the dialect will refuse it with a clear 400
        variant = self.choose(model, cycle.req.header(b"x-session-id") or cycle.caller.id.encode()) if isinstance(model, str) else None
        if variant is not None:
            cycle.variant = variant
            cycle.record.variant = variant.model
            cycle.record.extra += variant.header

    def choose(self, client_model: str, key: bytes) -> Variant | None:
        """The variant of `client_model` for the caller `key`, or None when it is not split."""
        variants = self.by_model.get(client_model)
        if variants is None:
            return None
        if len(variants) == 1:
            return variants[0]
        seed = key + b"\x00" + client_model.encode()
        return max(variants, key=lambda v: score(seed, v.model, v.weight))
