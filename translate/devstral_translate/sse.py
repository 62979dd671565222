"""Server-sent events framing: cut a byte stream into whole frames, and find a frame's payload.

A frame ends with a blank line (LF LF, or CR LF CR LF); only an incomplete tail is held back.
"""

from .errors import error_body


class FrameSplitter:
    """Feed arbitrary chunks; get back the complete frames, each with its terminator."""

    __slots__ = ("_tail",)

    def __init__(self) -> None:
        self._tail = b""

    def feed(self, data: bytes) -> list[bytes]:
        if self._tail:
            data = self._tail + data
        frames = []
        start = 0
        while True:
            lf = data.find(b"\n\n", start)
            crlf = data.find(b"\r\n\r\n", start)
            if crlf != -1 and (lf == -1 or crlf < lf):
                end = crlf + 4
            elif lf != -1:
                end = lf + 2
            else:
                break
            frames.append(data[start:end])
            start = end
        self._tail = data[start:]
        return frames

    def flush(self) -> bytes:
        """Whatever incomplete frame is left when the stream ends."""
        tail, self._tail = self._tail, b""
        return tail


def whole_frames(data: bytes) -> int:
    """Length of the prefix of `data` that is whole frames (0 when none is complete)."""
    lf = data.rfind(b"\n\n")
    crlf = data.rfind(b"\r\n\r\n")
    return max(lf + 2 if lf != -1 else 0, crlf + 4 if crlf != -1 else 0)


class WholeFrames:
    """Bytes up to the last complete frame; a partial frame waits for the rest. No copy when
    a chunk ends on a frame boundary, as a server's chunks usually do."""

    __slots__ = ("_tail",)

    def __init__(self) -> None:
        self._tail = b""

    def feed(self, data: bytes) -> bytes:
        if self._tail:
            data = self._tail + data
        elif data.endswith(b"\n\n"):  # the usual chunk: whole frames, nothing held
            return data
        end = whole_frames(data)
        if end == len(data):
            self._tail = b""
            return data
        self._tail = data[end:]
        return data[:end]

    def close(self) -> bytes:
        """What is left when the stream ends normally (a backend's unterminated last frame)."""
        tail, self._tail = self._tail, b""
        return tail

    def error(self, status: int, message: str, code: str | None = None) -> bytes:
        """The relay broke the stream (backend gone, timeout): its last event, in OpenAI's shape."""
        return b"data: " + error_body(status, message, code) + b"\n\n"


def data_payload(frame: bytes) -> tuple[int, int] | None:
    """(start, end) of the JSON payload of a single-line `data:` frame, else None."""
    if not frame.startswith(b"data:"):
        return None
    start = 6 if frame[5:6] == b" " else 5
    end = len(frame)
    while end > start and frame[end - 1] in (10, 13):
        end -= 1
    if frame.find(b"\n", start, end) != -1:
        return None
    return start, end
