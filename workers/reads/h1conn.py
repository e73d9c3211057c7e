"""One keep-alive HTTP/1.1 connection of :class:`~workers.reads.h1pool.RangeClient` (an asyncio
protocol around the sans-I/O :class:`~workers.reads.h1.ResponseParser`), and the :class:`Origin`
it belongs to."""

from __future__ import annotations

import asyncio

from workers.reads.h1 import H1Error, Response, ResponseParser, fixed_fields


class Disconnected(ConnectionError):
    """The server closed the connection before the answer was complete."""


class Origin:
    """``scheme://authority`` of requests, parsed once (:meth:`RangeClient.origin`): the pool's
    key, where to connect, and the request's constant field lines (``Host``, ``User-Agent``)."""

    __slots__ = ("bare", "fields", "host", "key", "port", "scheme")

    def __init__(self, scheme: str, host: str, port: int, authority: str, agent: str) -> None:
        self.scheme, self.host, self.port = scheme, host, port
        self.key = (scheme, host, port)
        self.bare = fixed_fields(authority)  # when the caller sends its own User-Agent
        self.fields = fixed_fields(authority, {"User-Agent": agent})


class Connection(asyncio.BufferedProtocol):
    """One connection; one request at a time. Reads land in the client's receive buffer, shared
    by its connections (each read is parsed before the loop makes the next): a whole answer
    costs one copy of its body, not the loop's copy of every read and then the body's."""

    def __init__(self, recv: bytearray, view: memoryview) -> None:
        self.loop = asyncio.get_running_loop()  # once per connection (each lookup is a getpid())
        self.recv, self.view = recv, view
        self.transport: asyncio.Transport | None = None
        self.parser: ResponseParser | None = None
        self.waiter: asyncio.Future[Response] | None = None
        self.alive = True
        self.got_bytes = False
        self.deadline = 0.0  # of the request in flight (loop time)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.view

    def buffer_updated(self, nbytes: int) -> None:
        parser = self.parser
        if parser is None:  # bytes nobody asked for: this connection cannot be trusted again
            self.close()
            return
        self.got_bytes = True
        try:
            answer = parser.feed_buffer(self.recv, nbytes)
        except H1Error as e:
            self._settle(None, e)
            self.close()
            return
        if answer is not None:
            self._settle(answer, None)

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        parser = self.parser
        if parser is None:
            return
        try:
            self._settle(parser.end(), None)
        except H1Error as e:
            self._settle(None, Disconnected(f"{e}{f' ({exc})' if exc else ''}"))

    def _settle(self, answer: Response | None, error: BaseException | None) -> None:
        self.parser = None
        waiter, self.waiter = self.waiter, None
        if waiter is None or waiter.done():
            return
        if error is not None:
            waiter.set_exception(error)
        else:
            assert answer is not None
            waiter.set_result(answer)

    def send(self, data: bytes, parser: ResponseParser) -> asyncio.Future[Response]:
        assert self.transport is not None
        self.parser = parser
        self.got_bytes = False
        self.waiter = self.loop.create_future()
        self.transport.write(data)
        return self.waiter

    def time_out(self) -> None:
        self._settle(None, TimeoutError("no complete answer within the timeout"))
        self.close()

    def close(self) -> None:
        self.alive = False
        if self.transport is not None:
            self.transport.abort()


__all__ = ["Connection", "Disconnected", "Origin"]
