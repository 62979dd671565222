"""Which Mistral tokenizer generation a backend runs (v3, v7, v11, v13, v15), and the options
of the Mistral dialect that depend on the backend.

A generation that cannot be known is None: the dialect then sends what every generation accepts.
"""

import functools
import re
from dataclasses import dataclass

# Which tokenizer generation a served model name implies, for `tokenizer_version = "auto"`.
# Names as mistral-common and the Hugging Face model cards spell them: the family, and the
# release (YYMM) where the family alone does not say.
_GENERATION_HINTS = (
    (re.compile(r"devstral-2\b|devstral-2-|devstral-small-2\b|devstral-small-2-|devstral-(small-|medium-)?2512|ministral-3|mistral-large-3|2512"), "v13"),
    (re.compile(r"devstral-(small-|medium-)?2507|mistral-small-3\.2|2506|2507|2509|magistral"), "v11"),
    (re.compile(r"devstral-(small-)?2505|mistral-small-3\.1|mistral-small-24b|2501|2503|mistral-large-2411|2411|pixtral-large"), "v7"),
    (re.compile(r"mistral-7b|codestral-22b|codestral-2405|mixtral|nemo|mistral-large-2407|pixtral-12b|ministral-8b|2407|2409|2410"), "v3"),
)


@functools.lru_cache(maxsize=256)
def guess_generation(model: str) -> str | None:
    """The tokenizer generation a model name implies; None when it says nothing."""
    name = model.lower()
    for pattern, generation in _GENERATION_HINTS:
        if pattern.search(name):
            return generation
    return None


@dataclass(frozen=True, slots=True)
class MistralOptions:
    generation: str | None = None  # None: find it from the model name, else valid for all
    bridge_text: str = "Ok."  # the assistant turn put between a tool result and a user turn
    images: bool = True  # False: the model takes no images, and the proxy says so itself
    cancelled_text: str = "The tool call was cancelled before it returned a result."
    tool_strict: bool = True  # keep `strict` in function definitions (mistral-common >= 1.6 takes it)
    # the bridge turn between a tool result and a user turn: True always, False never, None
    # learnt from the backend (sent without it until a refusal names that order)
    bridge: bool | None = True
