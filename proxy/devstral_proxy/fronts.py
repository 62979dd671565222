"""The front protocols' routes: /v1/responses (with stored responses) and /v1/messages (with
count_tokens). Each request is read into a chat-completions request by translate/, then rate
limited, routed, prepared by the backend's dialect and relayed like any chat request; the
reply is translated back on its way (`Front.over` stacks its translator on the
dialect's translator). A backend that serves the route itself gets it as it came.
"""

import logging
import time
from functools import partial

import msgspec

from devstral_translate import anthropic, responses
from devstral_translate.dialect import ResponseTranslator
from devstral_translate.errors import RequestError
from devstral_translate.front import FrontResponse
from devstral_translate.ids import new_id

from .errors import Failure
from .fetch import decode_json, fetch
from .http import JSON
from .logs import Once
from .store import StoreUnavailable
from .tasks import background, spawn

_encode = msgspec.json.encode
_CHAT = "/v1/chat/completions"
_log = logging.getLogger("devstral_proxy.fronts")
_dropped = Once(_log)  # what the fronts left out, one line per route and kind


def _note_dropped(route: str, kinds: list[str]) -> None:
    for kind in kinds:
        kind = kind[:64].encode("ascii", "backslashreplace").decode()
        _dropped.note(f"{route} {kind}", f"{route}: left out {kind!r} (a local model cannot run it); logged once per kind")


MAX_TOKENIZING = 4  # /tokenize calls under way to one backend at once; beyond, the estimate


def _estimate(body: bytes) -> int:
    return max(1, len(body) // 4)


class Front:
    """What the inference service needs of a front request: the route it came on and its
    body (for a backend that serves the route itself) and its reply translator."""

    __slots__ = ("path", "body", "reply")

    def __init__(self, path: str, body: bytes, reply) -> None:
        self.path = path
        self.body = body
        self.reply = reply

    def over(self, dialect: ResponseTranslator | None) -> FrontResponse:
        """The reply translator for a backend: the backend's dialect first, then this protocol's."""
        return FrontResponse(self.reply, dialect)


class _Stored(msgspec.Struct):
    response: msgspec.Raw
    messages: list


_stored = msgspec.json.Decoder(_Stored)


class _StoredResponse(msgspec.Struct):
    response: msgspec.Raw  # what GET returns; the messages beside it are skipped, never built


_stored_response = msgspec.json.Decoder(_StoredResponse)


def _refused(exc: RequestError) -> Failure:
    return Failure(400, exc.message, exc.code, exc.param)


def _as_chat(cycle, front: Front, chat: dict) -> None:
    # a front route's query (Claude Code's ?beta=true) is for the front, not the backend
    cycle.use_front(front, _CHAT, _encode(chat))


class FrontRoutes:
    def __init__(self, inference, store, log_error, config) -> None:
        self.inference = inference
        self.hosted_tools = config.responses.hosted_tools
        self.server_tools = config.messages.server_tools
        self.router = inference.router
        self.store = store  # MemoryStore, RedisStore or None (store = "off")
        self.log_error = log_error
        # a request as expanded from its stored history obeys the limit of one sent whole, and
        # an entry larger than it (it could never be continued) is not stored
        self.max_body = config.max_body_bytes
        self.max_items = config.request.max_items

    # ---- /v1/responses
    def responses(self, cycle) -> None:
        try:
            turn = responses.read_request(cycle.body, self.hosted_tools, self.max_items)
        except RequestError as exc:
            cycle.fail(_refused(exc))
            return
        if turn.dropped:
            _note_dropped("/v1/responses", turn.dropped)
        if turn.previous_response_id is None:
            self._respond(cycle, turn, [])
        elif self.store is None:
            cycle.fail(
                Failure(400, "previous_response_id: stored responses are off (responses.store = 'off').", "unsupported_parameter", "previous_response_id")
            )
        else:
            spawn(cycle, self._continue(cycle, turn), self.log_error)

    async def _continue(self, cycle, turn) -> None:
        previous = turn.previous_response_id
        try:
            value = await self.store.get(previous, cycle.caller.owner())
        except StoreUnavailable:  # the store (Redis) is down: say so, do not guess a history (it logs the outage)
            cycle.fail(Failure(503, "The response store is unavailable; try again shortly.", "store_unavailable", headers=b"retry-after: 1\r\n"))
            return
        if value is None:
            cycle.fail(Failure(404, f"Previous response with id '{previous}' not found.", "previous_response_not_found", "previous_response_id"))
            return
        if len(value) + len(cycle.body) > self.max_body:
            why = (
                f"The conversation stored under previous_response_id ({len(value)} bytes) with this input ({len(cycle.body)} bytes) "
                f"is over the request size limit ({self.max_body} bytes): start a new conversation or send a shorter history."
            )
            cycle.fail(Failure(413, why, "request_too_large", "previous_response_id"))
            return
        self._respond(cycle, turn, _stored.decode(value).messages)

    def _respond(self, cycle, turn, history: list) -> None:
        try:
            chat = responses.chat_request(turn, history)
        except RequestError as exc:
            cycle.fail(_refused(exc))
            return
        rid = f"resp_{new_id(24)}"
        keep = None
        if turn.store and self.store is not None:
            keep = partial(self._keep, rid, cycle.caller.owner(), history + turn.messages)
        _as_chat(cycle, Front("/v1/responses", cycle.body, responses.ResponsesTranslator(turn, rid, int(time.time()), keep)), chat)
        self.inference.entry(cycle)

    def _keep(self, rid: str, owner: bytes, messages: list, response: dict, assistant: dict) -> None:
        messages.append(assistant)
        value = _encode({"response": response, "messages": messages})
        if len(value) <= self.max_body:  # larger, it could never be continued: not kept
            background(self._put(rid, owner, value))

    async def _put(self, rid: str, owner: bytes, value: bytes) -> None:
        try:
            await self.store.put(rid, owner, value)
        except StoreUnavailable:
            pass  # the store logs the outage; this response is not kept

    def stored(self, cycle) -> None:
        """GET or DELETE /v1/responses/{id}."""
        req = cycle.req
        rid = req.path.rpartition("/responses/")[2]
        if req.method not in (b"GET", b"DELETE"):
            cycle.fail(
                Failure(
                    405, f"Method {req.method.decode()} not allowed on {req.path}; use GET or DELETE.", "method_not_allowed", headers=b"allow: GET, DELETE\r\n"
                )
            )
        elif self.store is None or not rid or "/" in rid or len(rid) > 128:
            cycle.fail(Failure(404, f"Response with id '{rid[:128]}' not found.", "not_found"))
        else:
            spawn(cycle, self._stored(cycle, rid, cycle.caller.owner()), self.log_error)

    async def _stored(self, cycle, rid: str, owner: bytes) -> None:
        try:
            if cycle.req.method == b"DELETE":
                found = await self.store.delete(rid, owner)
                body = _encode({"id": rid, "object": "response", "deleted": True})
            else:
                value = await self.store.get(rid, owner)
                found = value is not None
                body = bytes(_stored_response.decode(value).response) if found else b""  # the history skipped, not decoded
        except StoreUnavailable:
            cycle.fail(Failure(503, "The response store is unavailable; try again shortly.", "store_unavailable", headers=b"retry-after: 1\r\n"))
            return
        if found:
            cycle.respond(200, JSON, body)
        else:
            cycle.fail(Failure(404, f"Response with id '{rid}' not found.", "not_found"))

    # ---- /v1/messages
    def messages(self, cycle) -> None:
        dropped: list[str] = []
        try:
            chat = anthropic.read_request(cycle.body, server_tools=self.server_tools, dropped=dropped, max_items=self.max_items)
        except RequestError as exc:
            cycle.fail(_refused(exc))
            return
        if dropped:
            _note_dropped("/v1/messages", dropped)
        _as_chat(cycle, Front("/v1/messages", cycle.body, anthropic.AnthropicTranslator(chat["model"], chat.get("stop"))), chat)
        self.inference.entry(cycle)

    def count_tokens(self, cycle) -> None:
        """Through the same front door as every route that reaches a backend: the rate limits."""
        rate_limits = self.inference.rate_limits
        if rate_limits.active:
            rate_limits.check(cycle, self._count_tokens, self.log_error)
        else:
            self._count_tokens(cycle)

    def _count_tokens(self, cycle) -> None:
        """The prompt's tokens by the backend's tokenizer (vLLM's /tokenize) over the request
        its dialect would send; an estimate of 4 bytes a token without one, or while the
        backend is at its max_in_flight or already has MAX_TOKENIZING counts under way (a
        count never queues behind generations, nor opens a connection per caller)."""
        try:
            chat = anthropic.read_request(cycle.body, counting=True, server_tools=self.server_tools, max_items=self.max_items)
            model_map = self.inference.model_map
            model = model_map.get(chat["model"], chat["model"])
            backend = self.router.pick(model, chat["model"])
            if backend is None:
                cycle.fail(Failure(404 if not self.router.serving(model) else 503, f"No backend serves the model '{chat['model']}' now.", "model_not_found"))
                return
            prepared = backend.prepare(_CHAT, _encode(chat), model_map)
        except RequestError as exc:
            cycle.fail(_refused(exc))
            return
        record = cycle.record
        record.model, record.backend_model, record.backend = prepared.client_model, prepared.backend_model, backend.name
        spawn(cycle, self._count(cycle, backend, prepared.body), self.log_error)

    async def _count(self, cycle, backend, body: bytes) -> None:
        # checked and counted in one step of the task (no await between): counts handled in one
        # turn of the loop cannot all pass the check before any is counted
        if backend.full() or backend.tokenizing >= MAX_TOKENIZING:
            cycle.respond(200, JSON, _encode({"input_tokens": _estimate(body)}))
            return
        doc = decode_json(body)
        ask = {k: doc[k] for k in ("model", "messages", "tools") if k in doc}
        count = None
        backend.tokenizing += 1
        try:
            status, _, reply = await fetch(backend, b"POST", "/tokenize", min(backend.timeout, 10.0), _encode(ask))
            answer = decode_json(reply) if status == 200 else None
            if isinstance(answer, dict) and isinstance(answer.get("count"), int):
                count = answer["count"]
        except OSError:
            pass
        finally:
            backend.tokenizing -= 1
        cycle.respond(200, JSON, _encode({"input_tokens": _estimate(body) if count is None else count}))
