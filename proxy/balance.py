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
    return first if first.outstanding / first.weight <= second.outstanding / second.weight else second


def _score(key: bytes, name: str, weight: float) -> float:
    """Weighted rendezvous score: -weight / ln(u), u uniform in (0, 1) from the hash."""
    digest = hashlib.blake2b(key + b"\x00" + name.encode(), digest_size=8).digest()
    u = (int.from_bytes(digest, "big") + 1) / (2**64 + 2)
    return -weight / math.log(u)


def affinity(candidates: list, key: bytes, load_factor: float):
    """The first backend in the key's rendezvous order whose load stays within `load_factor`
    times its weighted share (bounded load); the least loaded one if all are over."""
    ranked = sorted(candidates, key=lambda b: _score(key, b.name, b.weight), reverse=True)
    total = sum(b.outstanding for b in candidates) + 1
    weight = sum(b.weight for b in candidates)
    for b in ranked:
        if b.outstanding + 1 <= math.ceil(load_factor * total * b.weight / weight):
            return b
    return min(candidates, key=lambda b: b.outstanding / b.weight)


def round_robin(candidates: list, turn: int):
    return candidates[turn % len(candidates)]
