"""mistral-common as the judge of what vLLM (--tokenizer-mode mistral) would accept.

Strict construction of ChatCompletionRequest on the raw dicts (extra keys forbidden), the
request validator of each tokenizer generation in ValidationMode.test, and the encoder of
every tokenizer mistral-common ships from v3 on (v11/v13 built from its tekken file with the
special tokens those generations add). Used by the tests and the simulator's strict mode;
mistral-common is a test dependency, imported only here.
"""

import functools
import json
import tempfile
from pathlib import Path

import mistral_common
from mistral_common.protocol.instruct.request import ChatCompletionRequest
from mistral_common.protocol.instruct.validator import (
    MistralRequestValidatorV3,
    MistralRequestValidatorV5,
    MistralRequestValidatorV11,
    MistralRequestValidatorV13,
    ValidationMode,
)
from mistral_common.tokens.tokenizers.mistral import MistralTokenizer
from mistral_common.tokens.tokenizers.tekken import Tekkenizer

VALIDATORS = {"v3": MistralRequestValidatorV3, "v7": MistralRequestValidatorV5, "v11": MistralRequestValidatorV11, "v13": MistralRequestValidatorV13}
_DATA = Path(mistral_common.__file__).parent / "data"


def _synthetic_tekken(version: str) -> MistralTokenizer:
    base = json.loads((_DATA / "tekken_240911.json").read_text())
    names = [str(getattr(t["token_str"], "value", t["token_str"])) for t in Tekkenizer.DEPRECATED_SPECIAL_TOKENS]
    names += ["[ARGS]", "[CALL_ID]", "[THINK]", "[/THINK]"]
    doc = {**base, "config": {**base["config"], "version": version}}
    doc["special_tokens"] = [{"rank": i, "token_str": n, "is_control": True} for i, n in enumerate(names)]
    path = Path(tempfile.mkdtemp()) / f"tekken_{version}.json"
    path.write_text(json.dumps(doc))
    return MistralTokenizer.from_file(str(path), mode=ValidationMode.test)


@functools.cache
def tokenizers() -> dict[str, list[tuple[str, MistralTokenizer]]]:
    """Encoders by generation: every shipped file from v3 on, and v11/v13 built from tekken."""
    load = lambda name: MistralTokenizer.from_file(str(_DATA / name), mode=ValidationMode.test)  # noqa: E731
    return {
        "v3": [(n, load(n)) for n in ("mistral_instruct_tokenizer_240323.model.v3", "tekken_240718.json", "tekken_240911.json")],
        "v7": [(n, load(n)) for n in ("mistral_instruct_tokenizer_241114.model.v7", "mistral_instruct_tokenizer_241114.model.v7m1")],
        "v11": [("tekken v11 (synthetic)", _synthetic_tekken("v11"))],
        "v13": [("tekken v13 (synthetic)", _synthetic_tekken("v13"))],
    }


@functools.cache
def legacy_tokenizers() -> list[tuple[str, MistralTokenizer]]:
    """v1 and v2, from before tool calling (v1) and parallel tool calls (v2)."""
    return [
        (n, MistralTokenizer.from_file(str(_DATA / n), mode=ValidationMode.test)) for n in ("tokenizer.model.v1", "mistral_instruct_tokenizer_240216.model.v2")
    ]


def judge(body: dict, generation: str | None = None) -> None:
    """Raise what vLLM would answer 400 for. generation None: every generation must accept."""
    generations = list(VALIDATORS) if generation is None else [generation]
    request = ChatCompletionRequest(messages=body["messages"], tools=body.get("tools"))
    images = any(isinstance(m.get("content"), list) and any(c.get("type") == "image_url" for c in m["content"]) for m in body["messages"])
    for g in generations:
        try:
            VALIDATORS[g](mode=ValidationMode.test).validate_request(request)
        except Exception as exc:
            raise AssertionError(f"{g} validator: {exc}") from exc
        for name, tokenizer in tokenizers()[g]:
            if images and tokenizer.instruct_tokenizer.image_encoder is None:
                continue  # images are for vision models only
            try:
                tokenizer.encode_chat_completion(ChatCompletionRequest(messages=body["messages"], tools=body.get("tools")))
            except Exception as exc:
                raise AssertionError(f"{name} encoder: {type(exc).__name__}: {exc}") from exc


def problem(body: dict, generation: str | None = None) -> str | None:
    """The reason vLLM would refuse this request, or None."""
    try:
        judge(body, generation)
    except Exception as exc:  # pydantic errors, validator and encoder exceptions
        return str(exc)
    return None
