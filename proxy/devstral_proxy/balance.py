"""How to choose among backends that may serve a request: least outstanding requests by power
of two random choices (weighted), round robin, or conversation affinity by rendezvous hashing
with bounded load. Pure functions over objects with `name`, `weight` and `outstanding`.

Rendezvous scores depend only on the key and the backend names, so every proxy instance with
the same backend list sends a conversation to the same backend.
"""

import hashlib
import math
import random


def least_loaded(candidates: list, rng: random.Random):
    """Power of two choices: two weighted random picks, the less loaded one per unit weight."""
    if len(candidates) == 1:
        return candidates[0]
    weights = [b.weight for b in candidates]
    first, second = rng.choices(candidates, weights, k=2)
    if first is second:
        others = [b for b in candidates if b is not first]
        second = rng.choices(others, [b.weight for b in others])[0]
    return first if first.load / first.weight <= second.load / second.weight else second


def score(key: bytes, name: str, weight: float) -> float:
    """Weighted rendezvous score: -weight / ln(u), u uniform in (0, 1) from the hash."""
    digest = hashlib.blake2b(key + b"\x00" + name.encode(), digest_size=8).digest()
    u = (int.from_bytes(digest, "big") + 1) / (2**64 + 2)
    return -weight / math.log(u)


def affinity(candidates: list, key: bytes, load_factor: float, overloaded=lambda b: None):
    """(backend, left): the first backend in the key's rendezvous order whose load stays within
    `load_factor` times its weighted share (bounded load) and that `overloaded(b)` does not
    flag (its engine's queue or KV cache); the least loaded one if all are over. `left` is
    (the key's first backend, why it was passed over) when the choice is another, else None."""
    ranked = sorted(candidates, key=lambda b: score(key, b.name, b.weight), reverse=True)
    total = sum(b.load for b in candidates) + 1
    weight = sum(b.weight for b in candidates)
    why = None
    for b in ranked:
        reason = overloaded(b)
        if reason is None and b.load + 1 > math.ceil(load_factor * total * b.weight / weight):
            reason = "load"
        if reason is None:
            return b, (ranked[0], why) if b is not ranked[0] else None
        why = why or reason
    chosen = min(candidates, key=lambda b: b.load / b.weight)
    return chosen, (ranked[0], why) if chosen is not ranked[0] else None


def round_robin(candidates: list, turn: int):
    return candidates[turn % len(candidates)]
