"""Identifiers the proxy makes up: one alphabet and one generator for every id it writes.

Derived ids depend only on their seed (the same history gives the same ids every turn);
new ids are random.
"""

import functools
import hashlib
import secrets

ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_TO_ALPHABET = bytes(ord(ALPHABET[b % len(ALPHABET)]) for b in range(256))  # byte -> letter, in C


@functools.lru_cache(maxsize=16384)  # agents resend the same history every turn
def derive_id(seed: str, length: int = 9) -> str:
    """`length` alphanumeric characters that depend only on `seed`."""
    return hashlib.blake2b(seed.encode(), digest_size=length).digest().translate(_TO_ALPHABET).decode()


def new_id(length: int = 9) -> str:
    """`length` random alphanumeric characters."""
    return secrets.token_bytes(length).translate(_TO_ALPHABET).decode()
