"""`devstral-proxy translate`: what a backend would receive for a client's request, and what
the client would get back for a backend's reply, with the list of rewrites the dialects made.

    devstral-proxy translate request.json --backend gpu0            (the config's backend)
    devstral-proxy translate - --dialect mistral --model ID [--generation v11]
    ... --route responses|messages    (a Responses or Messages request; default: chat)
    ... --reply reply.json            (a backend reply, whole or an SSE stream, translated back)

A request the proxy would refuse prints the error it would answer and exits 1.
"""

import argparse
import os
import sys

import msgspec

from devstral_translate import anthropic, responses
from devstral_translate.dialect import Prepared
from devstral_translate.errors import RequestError
from devstral_translate.front import FrontResponse
from devstral_translate.mistral.reply import MistralResponse
from devstral_translate.rewrites import Rewrites

from .config import BackendConfig, ConfigError, load
from .errors import Failure
from .router import make_dialect

_CHAT = "/v1/chat/completions"
_encode = msgspec.json.encode


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="devstral-proxy translate", description=__doc__.splitlines()[0])
    p.add_argument("request", help="the client's request body: a file, or - for standard input")
    p.add_argument("--route", choices=("chat", "responses", "messages"), default="chat", help="the route it is sent to (default: chat)")
    p.add_argument("--config", "-c", help="the server's config file (env: DEVSTRAL_PROXY_CONFIG): its backends and model_mapping")
    p.add_argument("--backend", help="the configured backend to translate for (default: the first)")
    p.add_argument("--dialect", choices=("openai", "mistral"), help="without a config: the backend's dialect")
    p.add_argument("--model", help="without a config: the model the backend serves (the request's model is mapped to it)")
    p.add_argument("--generation", choices=("v3", "v7", "v11", "v13", "v15"), help="the Mistral tokenizer generation; default: found from the model name")
    p.add_argument("--reply", help="a backend reply to this request (JSON, or an SSE stream): printed as the client gets it")
    return p.parse_args(argv)


def _target(args: argparse.Namespace) -> tuple[BackendConfig, dict[str, str]]:
    """The backend's config and the model mapping: from the config file, or from the flags."""
    if args.dialect is not None or not (args.config or os.environ.get("DEVSTRAL_PROXY_CONFIG")):
        cfg = BackendConfig(url="http://backend", dialect=args.dialect or "openai", tokenizer_version=args.generation or "auto")
        return cfg, {}
    config = load(args.config)
    backends = config.backend_list()
    chosen = next((b for b in backends if b.name == args.backend), None) if args.backend else backends[0]
    if chosen is None:
        raise ConfigError(f"no backend named {args.backend!r} (configured: {', '.join(b.name for b in backends)})")
    if args.generation:
        chosen = msgspec.structs.replace(chosen, tokenizer_version=args.generation)
    return chosen, config.model_map()


def _front(route: str, body: bytes, notes: Rewrites) -> tuple[bytes, object]:
    """A front protocol's request as the chat request the proxy makes of it, and its reply
    translator; the front's own rewrites noted."""
    if route == "responses":
        turn = responses.read_request(body)
        chat = responses.chat_request(turn, [])
        notes.note("Responses request sent as a chat request", f"{len(turn.messages)} input items -> {len(chat['messages'])} messages")
        for kind in turn.dropped:
            notes.note("hosted tool or item left out (a local model cannot run it)", kind)
        return _encode(chat), responses.ResponsesTranslator(turn, "resp_inspect", 0, None)
    dropped: list[str] = []
    chat = anthropic.read_request(body, dropped=dropped)
    notes.note("Messages request sent as a chat request", f"{len(chat['messages'])} messages")
    for kind in dropped:
        notes.note("server tool left out (a local model cannot run it)", kind)
    return _encode(chat), anthropic.AnthropicTranslator(chat["model"], chat.get("stop"))


def translate(args: argparse.Namespace, body: bytes, out) -> int:
    cfg, model_map = _target(args)
    if args.model:
        model = msgspec.json.decode(body).get("model") if body.lstrip()[:1] == b"{" else None
        if isinstance(model, str):
            model_map = {**model_map, model: args.model}
    dialect = make_dialect(cfg, {})
    notes = Rewrites()
    front = None
    try:
        chat = body
        if args.route != "chat":
            chat, front = _front(args.route, body, notes)
        prepared: Prepared = dialect.prepare(_CHAT, chat, model_map, False, notes)
    except (RequestError, msgspec.DecodeError, UnicodeDecodeError) as exc:
        failure = Failure(400, exc.message, exc.code, exc.param) if isinstance(exc, RequestError) else Failure(400, "The request body is not valid JSON.")
        out.write(f"the proxy would refuse this request: 400\n{failure.body().decode()}\n")
        return 1
    out.write(f"# what backend {cfg.name or '(flags)'} ({cfg.dialect} dialect) receives on {_CHAT}\n")
    out.write(msgspec.json.format(prepared.body, indent=2).decode() + "\n")
    _rewrites(notes, out)
    if args.reply:
        with open(args.reply, "rb") as f:
            reply = f.read()
        translator = FrontResponse(front, prepared.response) if front is not None else prepared.response
        back = Rewrites()
        if isinstance(prepared.response, MistralResponse):  # the dialect tells what it changed in a whole reply
            prepared.response.notes = back
        if prepared.client_model != prepared.backend_model:
            back.note("model name given back as the client asked", f"{prepared.backend_model} -> {prepared.client_model}")
        out.write("\n# what the client gets back\n")
        out.write(_back(translator, reply) + "\n")
        _rewrites(back, out)
    return 0


def _back(translator, reply: bytes) -> str:
    if translator is None:
        return reply.decode(errors="replace")
    if reply.lstrip().startswith(b"data:") or b"\ndata:" in reply[:4096]:
        stream = translator.stream()
        return (stream.feed(reply) + stream.close()).decode(errors="replace")
    return msgspec.json.format(translator.body(reply), indent=2).decode(errors="replace")


def _rewrites(notes: Rewrites, out) -> None:
    if not notes:
        out.write("# rewrites: none (the request goes as it came)\n")
        return
    out.write("# rewrites\n")
    for line in notes.lines():
        out.write(f"- {line}\n")


def main(argv: list[str]) -> int:
    args = parse(argv)
    try:
        if args.request == "-":
            body = sys.stdin.buffer.read()
        else:
            with open(args.request, "rb") as f:
                body = f.read()
        return translate(args, body, sys.stdout)
    except ConfigError as exc:
        print(f"devstral-proxy translate: invalid configuration: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"devstral-proxy translate: {exc}", file=sys.stderr)
        return 2
