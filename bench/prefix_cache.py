"""A model of vLLM's automatic prefix caching, for the simulated backend: the prompt is cut
into blocks (16 tokens, ~64 bytes here), each identified by a hash chained over the blocks
before it; an LRU keeps `capacity` blocks. Prefill costs time per token not found in cache.
"""

import hashlib
from collections import OrderedDict

BLOCK_BYTES = 64  # ~16 tokens
TOKENS_PER_BLOCK = 16


class PrefixCache:
    def __init__(self, capacity_blocks: int) -> None:
        self.capacity = capacity_blocks
        self.blocks: OrderedDict[bytes, None] = OrderedDict()
        self.prompt_tokens = 0
        self.cached_tokens = 0

    def lookup_and_fill(self, prompt: bytes) -> tuple[int, int]:
        """(prompt tokens, tokens found in cache) for this prompt; its blocks are then cached."""
        hashes, h = [], b""
        for i in range(0, len(prompt), BLOCK_BYTES):
            h = hashlib.blake2b(h + prompt[i : i + BLOCK_BYTES], digest_size=12).digest()
            hashes.append(h)
        hit = 0
        for h in hashes:  # the cached prefix: leading blocks present
            if h not in self.blocks:
                break
            hit += 1
        for h in hashes:
            self.blocks[h] = None
            self.blocks.move_to_end(h)
        while len(self.blocks) > self.capacity:
            self.blocks.popitem(last=False)
        total = len(hashes) * TOKENS_PER_BLOCK
        cached = hit * TOKENS_PER_BLOCK
        self.prompt_tokens += total
        self.cached_tokens += cached
        return total, cached
