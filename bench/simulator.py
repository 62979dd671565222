"""A simulated vLLM server: /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models,
/health in vLLM's wire format, streaming and not, with a configurable per-token delay.

Run it: `python -m bench.simulator --port 8000 --model mistral-small --token-delay 0.02`.
"""

import argparse
import asyncio
import json
import threading
import time
import uuid
from dataclasses import dataclass, field

import msgspec
from aiohttp import web

from bench.prefix_cache import PrefixCache

_encode = msgspec.json.encode
_decode = msgspec.json.decode

REPLY = "Hello! I am a simulated model served by the devstral-proxy test backend. How can I help you today?"


@dataclass
class Behavior:
    """What the simulator does; tests change it between requests."""

    models: list[str] = field(default_factory=lambda: ["mistral-sim"])
    roots: dict[str, str] = field(default_factory=dict)  # served name -> original model path (vLLM's `root`)
    parents: dict[str, str] = field(default_factory=dict)  # a LoRA adapter's name -> the model it adapts (vLLM's `parent`)
    reply: str = REPLY
    token_delay: float = 0.0  # seconds between streamed tokens (and per token, not streaming)
    first_token_delay: float = 0.0  # before the first byte of any reply
    gate: threading.Event | None = None  # an Event not yet set: replies wait for it (a test holds the engine)
    embedding_size: int = 8
    keepalive_timeout: float = 5.0  # uvicorn's default under vLLM
    health_status: int = 200  # GET /health (servers without one, LM Studio's, answer 404)
    # Mistral models under vLLM:
    strict_mistral: bool = False  # judge chat requests with mistral-common, 400 like vLLM
    generation: str | None = None  # the tokenizer generation judged (None: all of them)
    vllm_checks: bool = False  # vLLM's own request checks (tool_choice, stream_options, newer prefill rule)
    old_mistral_common: bool = False  # before 1.11.1: a user turn right after a tool result is refused
    tool_mode: str | None = None  # with tools: "structured", "raw-v3" or "raw-v11" calls
    tool_calls: int = 1  # how many tools (the first ones offered) it calls
    preamble: str = ""  # text the model writes before its tool calls
    trailing: str = ""  # text the model writes after its raw tool calls
    split_markers: bool = False  # send [TOOL_CALLS] and [ARGS] in pieces too (llama.cpp with some GGUFs)
    spaced_frames: bool = False  # stream frames as spaced JSON (`"finish_reason": "stop"`), not compact
    piece: int = 5  # characters per streamed delta of raw tool-call text
    think: str = ""  # reasoning the model writes before its answer
    think_mode: str = "raw"  # "raw": as [THINK]...[/THINK] text (Magistral); "structured": reasoning_content
    # vLLM's prefix cache: prefill costs `prefill_per_token` for each prompt token not cached
    prefix_cache_blocks: int = 0  # 0: no model of the cache
    prefill_per_token: float = 0.0
    # a continuous-batching engine: `slots` sequences run at once, the rest wait (0: no limit);
    # beyond `max_queued` waiting, 503 (vLLM's --max-num-queued-reqs); /metrics reports both
    slots: int = 0
    max_queued: int = 0
    # scripted replies, one taken per chat request while any are left: {"text": ..., "think": ...,
    # "calls": [{"name": ..., "arguments": {...}}]} (calls written as tool_mode says, structured
    # when it is unset); the agents' tests script a call to the agent's own tool, then text
    script: list[dict] = field(default_factory=list)
    max_model_len: int = 32768  # prompt + max_tokens above it: vLLM's context-length 400


@dataclass
class Record:
    """What the simulator saw, for tests to check."""

    requests: list[dict] = field(default_factory=list)
    headers: list[dict] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)  # each request's path and query
    disconnects: list[float] = field(default_factory=list)  # monotonic times a client vanished mid-reply
    health_checks: int = 0
    model_lists: int = 0  # GET /v1/models answered
    tokenized: int = 0  # /tokenize requests answered
    tokenizing: int = 0  # /tokenize requests under way
    engine_refused: int = 0  # 503s for a full engine queue
    peak_running: int = 0  # most sequences running at once


def tokens(text: str) -> list[str]:
    """Split a reply into word-sized tokens that join back to the text."""
    out, start = [], 0
    for i, ch in enumerate(text):
        if ch == " " and i > start:
            out.append(text[start:i])
            start = i
    out.append(text[start:])
    return [t for t in out if t]


def _prompt_tokens(doc: dict) -> int:
    return max(1, len(_encode(doc.get("messages") or doc.get("prompt") or doc.get("input") or "")) // 4)


def _stopped(words: list[str], stop: object) -> tuple[list[str], str | None]:
    """The words before the first stop string, and that string (None when none occurs)."""
    text = "".join(words)
    found = [(text.find(s), s) for s in ([stop] if isinstance(stop, str) else stop) if isinstance(s, str) and s and s in text]
    if not found:
        return words, None
    at, s = min(found)
    return tokens(text[:at]) or [""], s


def context_problem(doc: dict, max_model_len: int) -> str | None:
    """vLLM's refusal of a request whose prompt and max_tokens do not fit the model's length."""
    limit = doc.get("max_completion_tokens") or doc.get("max_tokens")
    prompt = _prompt_tokens(doc)
    if not isinstance(limit, int) or prompt + limit <= max_model_len:
        return None
    return (
        f"'max_tokens' or 'max_completion_tokens' is too large: {limit}. This model's maximum context length is "
        f"{max_model_len} tokens and your request has {prompt} input tokens ({limit} > {max_model_len} - {prompt}). None"
    )


def vllm_problem(doc: dict) -> str | None:
    """What vLLM's own request checks refuse before the tokenizer sees the request."""
    choice = doc.get("tool_choice")
    if isinstance(choice, str) and choice not in ("none", "auto", "required"):
        return f"tool_choice: Input should be 'none', 'auto' or 'required', got {choice!r}"
    if doc.get("stream_options") is not None and not doc.get("stream"):
        return "Stream options can only be defined when `stream=True`."
    messages = doc.get("messages") or []
    if messages and messages[-1].get("role") == "assistant":  # newer vLLM ignores `prefix`
        if doc.get("continue_final_message") is not True or doc.get("add_generation_prompt") is not False:
            return "A final assistant message needs continue_final_message=true and add_generation_prompt=false."
    return None


class Simulator:
    def __init__(self, behavior: Behavior | None = None) -> None:
        self.behavior = behavior or Behavior()
        self.record = Record()
        self.runner: web.AppRunner | None = None
        self.cache = PrefixCache(self.behavior.prefix_cache_blocks) if self.behavior.prefix_cache_blocks else None
        self.port = 0
        self.running = 0  # the engine's sequences (Behavior.slots)
        self.waiting = 0
        self.freed = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 << 20)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/health", self.health)
        app.router.add_route("*", "/v1/echo", self.echo)
        app.router.add_get("/v1/redirect", self.redirect)
        app.router.add_post("/tokenize", self.tokenize)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/sim/stats", self.stats)
        app.router.add_post("/v1/responses", self.native)
        app.router.add_post("/v1/messages", self.native)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0, ssl_context=None) -> int:
        self.runner = web.AppRunner(self.app(), access_log=None, keepalive_timeout=self.behavior.keepalive_timeout)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port, ssl_context=ssl_context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    # ---- helpers
    async def _read(self, request: web.Request) -> dict | web.Response:
        body = await request.read()
        try:
            doc = _decode(body)
        except (msgspec.DecodeError, UnicodeDecodeError):
            try:  # Python's json (as vLLM's pydantic) takes what msgspec does not: lone surrogates
                doc = json.loads(body)
            except ValueError:
                return self._error(400, "Invalid JSON body", "BadRequestError")
        if not isinstance(doc, dict):
            return self._error(400, "Body must be an object", "BadRequestError")
        self.record.requests.append(doc)
        self.record.headers.append(dict(request.headers))
        self.record.targets.append(request.path_qs)
        model = doc.get("model")
        if model is not None and model not in self.behavior.models:
            return self._error(404, f"The model `{model}` does not exist.", "NotFoundError", "model")
        return doc

    @staticmethod
    def _error(status: int, message: str, kind: str, param: str | None = None) -> web.Response:
        body = {"error": {"message": message, "type": kind, "param": param, "code": status}}
        return web.Response(status=status, body=_encode(body), content_type="application/json")

    async def _first_token(self, doc: dict | None = None) -> None:
        gate = self.behavior.gate
        while gate is not None and not gate.is_set():
            await asyncio.sleep(0.002)
        wait = self.behavior.first_token_delay
        if self.cache is not None and doc is not None:  # prefill what the cache does not hold
            total, cached = self.cache.lookup_and_fill(_encode(doc.get("messages") or doc.get("prompt") or ""))
            wait += (total - cached) * self.behavior.prefill_per_token
        if wait:
            await asyncio.sleep(wait)

    async def _generate(self, n: int, request: web.Request | None = None) -> bool:
        """The time a non-streamed reply of n tokens takes after the first; False when the
        client left meanwhile (vLLM aborts the request: recorded as a disconnect)."""
        left = n * self.behavior.token_delay
        while left > 0:
            await asyncio.sleep(min(left, 0.005))
            left -= 0.005
            if request is not None and (request.transport is None or request.transport.is_closing()):
                self.record.disconnects.append(time.monotonic())
                return False
        return True

    async def _admit(self, request: web.Request) -> web.Response | bool:
        """A slot of the engine: True once running; a 503 when its queue is full; False when
        the client left while waiting."""
        b = self.behavior
        if not b.slots:
            return True
        if self.running >= b.slots and b.max_queued and self.waiting >= b.max_queued:
            self.record.engine_refused += 1
            return self._error(503, "The engine's waiting queue is full.", "ServiceUnavailableError")
        self.waiting += 1
        try:
            while self.running >= b.slots:
                self.freed.clear()
                try:
                    await asyncio.wait_for(self.freed.wait(), 0.005)
                except TimeoutError:
                    pass
                if request.transport is None or request.transport.is_closing():
                    self.record.disconnects.append(time.monotonic())
                    return False
        finally:
            self.waiting -= 1
        self.running += 1
        self.record.peak_running = max(self.record.peak_running, self.running)
        return True

    def _release(self) -> None:
        self.running -= 1
        self.freed.set()

    async def metrics(self, request: web.Request) -> web.Response:
        """vLLM's engine gauges in Prometheus text."""
        b = self.behavior
        lines = []
        for m in b.models:
            label = f'{{engine="0",model_name="{m}"}}'
            lines += [f"vllm:num_requests_running{label} {float(self.running)}", f"vllm:num_requests_waiting{label} {float(self.waiting)}"]
            lines.append(f"vllm:kv_cache_usage_perc{label} {self.running / b.slots if b.slots else 0.0}")
        return web.Response(text="\n".join(["# HELP vllm:num_requests_running Running requests.", *lines]) + "\n", content_type="text/plain")

    def _refusal(self, doc: dict) -> web.Response | None:
        """vLLM's answer when it or mistral-common refuses the request (older vLLM's error shape)."""
        reason = vllm_problem(doc) if self.behavior.vllm_checks else None
        if reason is None and doc.get("messages") is not None:
            reason = context_problem(doc, self.behavior.max_model_len)
        if reason is None and self.behavior.old_mistral_common:
            roles = [m.get("role") for m in doc.get("messages") or []]
            if any(a == "tool" and b == "user" for a, b in zip(roles, roles[1:])):
                reason = "Unexpected role 'user' after role 'tool'"
        if reason is None and self.behavior.strict_mistral:
            from bench.mistral_judge import problem

            reason = problem(doc, self.behavior.generation)
        if reason is None:
            return None
        body = {"object": "error", "message": reason, "type": "BadRequestError", "param": None, "code": 400}
        return web.Response(status=400, body=_encode(body), content_type="application/json")

    def _calls(self, doc: dict) -> list[tuple[str, dict]]:
        """The calls the model makes: the first offered tools, with plausible arguments."""
        out = []
        for tool in (doc.get("tools") or [])[: self.behavior.tool_calls]:
            fn = tool["function"]
            props = list((fn.get("parameters") or {}).get("properties") or {}) or ["query"]
            out.append((fn["name"], {p: f"value of {p}" for p in props}))
        return out

    def _raw_text(self, calls: list[tuple[str, dict]], preamble: str) -> list[str]:
        """The deltas of a raw tool-call reply: the special token alone, then small pieces."""
        b = self.behavior
        if b.tool_mode == "raw-v3":
            body = " " + json.dumps([{"name": n, "arguments": a} for n, a in calls])
            pieces = ["[TOOL_CALLS]", *[body[i : i + b.piece] for i in range(0, len(body), b.piece)]]
        else:
            pieces = []
            for n, a in calls:
                args = json.dumps(a)
                pieces += ["[TOOL_CALLS]", *[n[i : i + b.piece] for i in range(0, len(n), b.piece)], "[ARGS]"]
                pieces += [args[i : i + b.piece] for i in range(0, len(args), b.piece)]
        tail = [b.trailing[i : i + b.piece] for i in range(0, len(b.trailing), b.piece)]
        if b.split_markers:  # every delta `piece` characters, markers cut like any text
            text = "".join(pieces)
            pieces = [text[i : i + b.piece] for i in range(0, len(text), b.piece)]
        return ([preamble] if preamble else []) + pieces + tail

    def _usage(self, doc: dict, completion: int) -> dict:
        p = _prompt_tokens(doc)
        return {"prompt_tokens": p, "total_tokens": p + completion, "completion_tokens": completion, "prompt_tokens_details": None}

    async def _stream(self, request: web.Request, doc: dict, frames) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream; charset=utf-8"})
        await resp.prepare(request)
        b = self.behavior
        try:
            for i, frame in enumerate(frames):
                if i and b.token_delay:
                    await asyncio.sleep(b.token_delay)
                if request.transport is None or request.transport.is_closing():
                    raise ConnectionResetError
                data = json.dumps(frame).encode() if b.spaced_frames else _encode(frame)
                await resp.write(b"data: " + data + b"\n\n")
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
        except ConnectionResetError:
            self.record.disconnects.append(time.monotonic())
        except asyncio.CancelledError:
            self.record.disconnects.append(time.monotonic())
            raise
        return resp

    # ---- routes
    async def _judged(self, request: web.Request) -> dict | web.Response:
        """The request's JSON, or the answer vLLM gives when it (or mistral-common) refuses it."""
        doc = await self._read(request)
        if isinstance(doc, web.Response):
            return doc
        refused = self._refusal(doc)
        return doc if refused is None else refused

    async def chat(self, request: web.Request) -> web.StreamResponse:
        doc = await self._judged(request)
        if isinstance(doc, web.Response):
            return doc
        admitted = await self._admit(request)
        if admitted is not True:
            return admitted or web.Response(status=499)
        try:
            return await self._chat(request, doc)
        finally:
            if self.behavior.slots:
                self._release()

    async def _chat(self, request: web.Request, doc: dict) -> web.StreamResponse:
        model = doc.get("model") or self.behavior.models[0]
        words = tokens(self.behavior.reply)
        cid = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        messages = doc.get("messages") or [{}]
        answered = messages[-1].get("role") == "tool"  # a tool result came back: the model answers it
        calls = self._calls(doc) if self.behavior.tool_mode and not answered else []
        tool_mode, thought, preamble = self.behavior.tool_mode, self.behavior.think, self.behavior.preamble
        if self.behavior.script:
            scripted = self.behavior.script.pop(0)
            words = tokens(scripted.get("text", "")) or [""]
            calls = [(c["name"], c.get("arguments") or {}) for c in scripted.get("calls", [])]
            tool_mode, thought = tool_mode or "structured", scripted.get("think", "")
            preamble = scripted.get("text", "") if calls else ""
        await self._first_token(doc)
        stop_reason = None
        if calls and tool_mode != "structured":
            words = self._raw_text(calls, preamble)
        elif doc.get("stop"):  # vLLM: the text ends before the first stop string; stop_reason names it
            words, stop_reason = _stopped(words, doc["stop"])
        limit = doc.get("max_tokens")
        cut = not calls and isinstance(limit, int) and 0 < limit < len(words)
        if cut:
            words = words[:limit]
        think = tokens(thought) if thought else []
        if think and self.behavior.think_mode == "raw":
            words = ["[THINK]", *think, "[/THINK]", *words]
        message = {"role": "assistant", "reasoning_content": None, "content": "".join(words), "tool_calls": []}
        if think and self.behavior.think_mode != "raw":
            message["reasoning_content"] = thought
        finish = "length" if cut else "stop"
        if calls and tool_mode == "structured":
            structured = [{"id": uuid.uuid4().hex[:9], "type": "function", "function": {"name": n, "arguments": json.dumps(a)}} for n, a in calls]
            message.update(content=preamble or None, tool_calls=structured)
            finish = "tool_calls"
        if doc.get("stream"):
            base = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model}
            delta = lambda d: {**base, "choices": [{"index": 0, "delta": d, "logprobs": None, "finish_reason": None}]}  # noqa: E731
            frames = [delta({"role": "assistant", "content": ""})]
            if message["reasoning_content"]:
                frames += [delta({"reasoning_content": w}) for w in think]
            if finish == "tool_calls":
                if preamble:
                    frames.append(delta({"content": preamble}))
                for k, c in enumerate(message["tool_calls"]):
                    frames.append(delta({"tool_calls": [{"index": k, "id": c["id"], "type": "function", "function": {"name": c["function"]["name"]}}]}))
                    args = c["function"]["arguments"]
                    frames += [delta({"tool_calls": [{"index": k, "function": {"arguments": args[i : i + 5]}}]}) for i in range(0, len(args), 5)]
            else:
                frames += [delta({"content": w}) for w in words]
            frames.append({**base, "choices": [{"index": 0, "delta": {"content": ""}, "logprobs": None, "finish_reason": finish, "stop_reason": stop_reason}]})
            if (doc.get("stream_options") or {}).get("include_usage"):
                frames.append({**base, "choices": [], "usage": self._usage(doc, len(words))})
            return await self._stream(request, doc, frames)
        if not await self._generate(len(words), request):
            return web.Response(status=499)
        body = {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": finish,
                    "stop_reason": stop_reason,
                }
            ],
            "usage": self._usage(doc, len(words)),
            "prompt_logprobs": None,
        }
        return web.Response(body=_encode(body), content_type="application/json")

    async def completions(self, request: web.Request) -> web.StreamResponse:
        doc = await self._read(request)
        if isinstance(doc, web.Response):
            return doc
        model = doc.get("model") or self.behavior.models[0]
        words = tokens(self.behavior.reply)
        cid = f"cmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        await self._first_token()
        if doc.get("stream"):
            base = {"id": cid, "object": "text_completion", "created": created, "model": model}
            frames = [{**base, "choices": [{"index": 0, "text": w, "logprobs": None, "finish_reason": None, "stop_reason": None}]} for w in words]
            frames[-1]["choices"][0]["finish_reason"] = "length"
            return await self._stream(request, doc, frames)
        await self._generate(len(words))
        body = {
            "id": cid,
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "text": self.behavior.reply, "logprobs": None, "finish_reason": "length", "stop_reason": None}],
            "usage": self._usage(doc, len(words)),
        }
        return web.Response(body=_encode(body), content_type="application/json")

    async def embeddings(self, request: web.Request) -> web.Response:
        doc = await self._read(request)
        if isinstance(doc, web.Response):
            return doc
        inputs = doc.get("input")
        inputs = inputs if isinstance(inputs, list) else [inputs]
        n = self.behavior.embedding_size
        data = [{"index": i, "object": "embedding", "embedding": [((hash(str(x)) >> k) % 1000) / 1000.0 for k in range(n)]} for i, x in enumerate(inputs)]
        await self._first_token()
        body = {
            "id": f"embd-{uuid.uuid4().hex}",
            "object": "list",
            "created": int(time.time()),
            "model": doc.get("model") or self.behavior.models[0],
            "data": data,
            "usage": {"prompt_tokens": _prompt_tokens(doc), "total_tokens": _prompt_tokens(doc), "completion_tokens": 0, "prompt_tokens_details": None},
        }
        return web.Response(body=_encode(body), content_type="application/json")

    async def models(self, request: web.Request) -> web.Response:
        gate = self.behavior.gate  # a held engine holds its model list too (a hung backend)
        while gate is not None and not gate.is_set():
            await asyncio.sleep(0.002)
        self.record.model_lists += 1
        created = int(time.time())
        data = [
            {
                "id": m,
                "object": "model",
                "created": created,
                "owned_by": "vllm",
                "root": self.behavior.roots.get(m, m),
                "parent": self.behavior.parents.get(m),
                "max_model_len": self.behavior.max_model_len,
                "permission": [],
            }
            for m in self.behavior.models
        ]
        return web.Response(body=_encode({"object": "list", "data": data}), content_type="application/json")

    async def health(self, request: web.Request) -> web.Response:
        self.record.health_checks += 1
        return web.Response(status=self.behavior.health_status)

    async def redirect(self, request: web.Request) -> web.Response:
        """Not vLLM: Starlette's trailing-slash redirect, with the server's own address."""
        return web.Response(status=307, headers={"location": f"http://{request.host}/v1/redirect/"})

    async def stats(self, request: web.Request) -> web.Response:
        """Not vLLM: what the simulator saw, for tests in other processes (the C# suite)."""
        r = self.record
        body = {"requests": len(r.requests), "disconnects": len(r.disconnects), "last_messages": (r.requests[-1].get("messages") if r.requests else None)}
        if self.cache is not None:
            body.update(prompt_tokens=self.cache.prompt_tokens, cached_tokens=self.cache.cached_tokens)
        return web.Response(body=_encode(body), content_type="application/json")

    async def tokenize(self, request: web.Request) -> web.Response:
        """vLLM's /tokenize of a chat request: the prompt's token count (judged as chat is)."""
        doc = await self._judged(request)
        if isinstance(doc, web.Response):
            return doc
        self.record.tokenizing += 1
        try:
            await self._first_token()  # the gate and first_token_delay hold it too
        finally:
            self.record.tokenizing -= 1
        self.record.tokenized += 1
        return web.Response(
            body=_encode({"count": _prompt_tokens(doc), "max_model_len": self.behavior.max_model_len, "tokens": []}), content_type="application/json"
        )

    async def native(self, request: web.Request) -> web.Response:
        """A backend that serves /v1/responses or /v1/messages itself (tests of native_routes)."""
        doc = await self._read(request)
        if isinstance(doc, web.Response):
            return doc
        return web.Response(
            body=_encode({"object": "native", "path": request.path, "model": doc.get("model"), "request": doc}), content_type="application/json"
        )

    async def echo(self, request: web.Request) -> web.Response:
        """Not vLLM: shows a test what arrived for a pass-through path."""
        body = await request.read()
        doc = {"method": request.method, "path": request.path_qs, "headers": dict(request.headers), "body": body.decode("utf-8", "replace")}
        return web.Response(body=_encode(doc), content_type="application/json")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.simulator", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--model", action="append", help="served model name (repeatable)")
    p.add_argument("--lora", action="append", metavar="NAME=PARENT", help="serve a LoRA adapter of PARENT (vLLM's --lora-modules; repeatable)")
    p.add_argument("--token-delay", type=float, default=0.0)
    p.add_argument("--first-token-delay", type=float, default=0.0)
    p.add_argument("--strict-mistral", action="store_true", help="refuse what mistral-common refuses, as vLLM does")
    p.add_argument("--tool-mode", choices=("structured", "raw-v3", "raw-v11"))
    p.add_argument("--reply", default=REPLY, help="what the model answers")
    p.add_argument("--slots", type=int, default=0, help="sequences the engine runs at once (0: no limit)")
    p.add_argument("--max-queued", type=int, default=0, help="with --slots: waiting requests beyond which it answers 503")
    p.add_argument("--prefix-cache-blocks", type=int, default=0, help="model vLLM's prefix cache (16-token blocks)")
    p.add_argument("--prefill-us", type=float, default=0.0, help="prefill time per uncached prompt token, µs")
    p.add_argument("--no-gc", action="store_true", help="no collector pauses (benchmarks that time the proxy, not the simulator)")
    args = p.parse_args(argv)
    if args.no_gc:
        import gc

        gc.disable()
    if args.strict_mistral:
        try:
            import mistral_common  # noqa: F401  (the judge)
        except ImportError:
            p.exit(2, "--strict-mistral judges requests with mistral-common, which is not installed: pip install 'devstral-proxy[test]' (or mistral-common)\n")
    behavior = Behavior(
        token_delay=args.token_delay, first_token_delay=args.first_token_delay, strict_mistral=args.strict_mistral, tool_mode=args.tool_mode, reply=args.reply
    )
    behavior.slots, behavior.max_queued = args.slots, args.max_queued
    behavior.prefix_cache_blocks, behavior.prefill_per_token = args.prefix_cache_blocks, args.prefill_us / 1e6
    if args.model:
        behavior.models = args.model
    for spec in args.lora or ():
        name, _, parent = spec.partition("=")
        behavior.models = [*behavior.models, name]
        behavior.parents[name] = parent or behavior.models[0]

    async def run() -> None:
        sim = Simulator(behavior)
        port = await sim.start(args.host, args.port)
        print(f"simulated vLLM on http://{args.host}:{port} serving {', '.join(behavior.models)}", flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
