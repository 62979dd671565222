"""The Mistral dialect: OpenAI chat requests made valid for vLLM serving Mistral-family models
(request.py), and their replies, whole (reply.py) or streamed (stream.py), made OpenAI again.

Other routes (completions, embeddings) get the pass-through dialect's model mapping.
"""

from .. import openai
from ..dialect import Prepared
from ..modelname import encoded_name
from ..request import note_inference, read_inference
from ..rewrites import Rewrites
from ..wire import decode_any, decode_messages, encode_object, raw
from .generation import MistralOptions, guess_generation
from .names import NameMap
from .reply import MistralResponse
from .request import note_left_out, top_level, translate_messages, translate_tools

__all__ = ["MistralDialect", "MistralOptions", "guess_generation"]
_ORDER_REFUSAL = b"Unexpected role 'user' after role 'tool'"  # mistral-common's words


class MistralDialect:
    """The Mistral dialect: full translation of chat requests, model mapping elsewhere."""

    def __init__(self, opts: MistralOptions | None = None, known: dict[str, str] | None = None) -> None:
        self.opts = opts or MistralOptions()
        # served model name -> generation, learnt from the backend (vLLM's /v1/models `root`)
        self.known = known if known is not None else {}
        self.bridge = self.opts.bridge  # None until learnt; then True when the backend needs it

    def prepare(self, path: str, body: bytes, model_map: dict[str, str], want_usage: bool = False, notes: Rewrites | None = None) -> Prepared:
        """`notes`: told each rewrite as it is made (devstral-proxy translate, DEBUG logs)."""
        if path != "/v1/chat/completions":
            return openai.prepare(path, body, model_map, want_usage, notes)
        req = read_inference(path, body, model_map, want_usage)
        if notes is not None:
            note_inference(req, notes)
        top = req.top
        generation = self.opts.generation or self.known.get(req.backend_model) or guess_generation(req.backend_model)
        names = NameMap()
        translate_tools(top, names, self.opts.tool_strict, notes)  # first: names registered in the tools' order
        if notes is not None:
            note_left_out(decode_any(top["messages"]), notes)
        messages, bridgeable = translate_messages(decode_messages(top["messages"]), self.opts, generation, names, self.bridge is True, notes)
        top["messages"] = raw(messages)
        top_level(top, req.stream, generation, messages[-1].get("prefix") is True, notes)
        if notes is not None and names.renamed:
            for client, backend in names.to_backend.items():
                if client != backend:
                    notes.note("tool name rewritten to letters, digits, _ and - (64 at most)", f"{client} -> {backend}")
        response = MistralResponse(encoded_name(req.client_model), encoded_name(req.backend_model), names)
        prepared = Prepared(encode_object(top), req.stream, req.client_model, req.backend_model, response, req.usage_added)
        if self.bridge is None and bridgeable:
            prepared.retry = self.refused  # sent without the bridge: a refusal teaches it
        return prepared

    def refused(self, status: int, body: bytes) -> bool:
        """Whether the backend refused a user turn right after a tool result (mistral-common
        before 1.11.1): then this dialect bridges that order from now on, and the request
        is worth sending again."""
        if status != 400 or _ORDER_REFUSAL not in body:
            return False
        self.bridge = True
        return True
