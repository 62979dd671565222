"""The Responses API (`/v1/responses`, what Codex CLI and the Agents SDK speak) over chat
completions: requests read into chat terms (request.py), replies whole (reply.py) or streamed
(stream.py) made Response objects and events again.
"""

from .reply import ResponsesReply, assistant_turn
from .request import ResponsesRequest, chat_request, read_request
from .stream import ResponsesStream

__all__ = ["ResponsesRequest", "ResponsesTranslator", "assistant_turn", "chat_request", "read_request"]


class ResponsesTranslator(ResponsesReply):
    """Whole replies and streams of one Responses turn."""

    def stream(self) -> ResponsesStream:
        return ResponsesStream(self)
