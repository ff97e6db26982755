"""One write per answer: uvicorn's HTTP protocol over a transport that joins what is written in
one turn of the event loop into one `write`.

uvicorn writes an answer's status line and headers, then its body, as two writes: two
system calls, two TCP segments, and a client that may wake for the first before the second
is there (on a loaded machine each wake-up waits for a core). `coalescing_http()` gives
uvicorn (its `http=` option) its own httptools protocol whose transport holds the writes of
one turn of the loop and writes them together at the end of that turn (`loop.call_soon`),
or before closing. Nothing else changes: the same parser, flow control (the real
transport's buffer limits pause and resume the protocol as before) and keep-alive. Without
httptools, uvicorn's default ("auto") is used.
"""

import asyncio
from typing import Any


class _Coalescing:
    """A transport that holds writes until the end of the event loop's turn."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._buffer: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._buffer:
            self._loop.call_soon(self._flush)
        self._buffer.append(bytes(data))

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def _flush(self) -> None:
        if self._buffer:
            data = b"".join(self._buffer)
            self._buffer.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:  # everything else is the real transport's
        return getattr(self._transport, name)


def coalescing_http() -> Any:
    """uvicorn's httptools protocol over a `_Coalescing` transport ("auto" without httptools),
    for uvicorn's `http=` option."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # no httptools: uvicorn's own choice
        return "auto"

    class CoalescingProtocol(HttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            coalescing = _Coalescing(transport, asyncio.get_running_loop())
            super().connection_made(coalescing)  # type: ignore[arg-type]

    return CoalescingProtocol
