"""Anthropic Messages (`/v1/messages`, what Claude Code speaks) over chat completions:
requests read into chat terms (request.py), replies whole (reply.py) or streamed (stream.py)
made Messages and events again, errors in Anthropic's shape (errors.py).
"""

from .errors import error_body, from_openai
from .reply import AnthropicReply
from .request import read_request
from .stream import AnthropicStream

__all__ = ["AnthropicTranslator", "error_body", "from_openai", "read_request"]


class AnthropicTranslator(AnthropicReply):
    """Whole replies and streams of one Messages request."""

    def stream(self) -> AnthropicStream:
        return AnthropicStream(self)
