"""A local RFC 8030 push endpoint for benchmarks: counts POSTs, answers 201.

Raw asyncio on uvloop with httptools (no framework), so that the sink costs
little of the two cores the sender shares. It does not decrypt (the tests in
tests/e2e/test_omakaiku_push.py do): per push it checks what a push service
checks first, ``Authorization: vapid t=…,k=…`` (RFC 8292), ``Content-Encoding:
aes128gcm`` (RFC 8291), a ``TTL`` (RFC 8030) and a body; a push that lacks one
is answered 400 and counted as bad. ``GET /stats`` → ``{"received", "bad",
"first_at", "last_at"}`` (``time.time()`` of the first and last good push);
``POST /reset`` zeroes them.

Run: ``python bench/push_sink.py PORT`` (prints ``ready`` when listening).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import httptools
import uvloop

STATS = {"received": 0, "bad": 0, "first_at": None, "last_at": None}


def valid_push(headers: dict[bytes, bytes], body_length: int) -> bool:
    authorization = headers.get(b"authorization", b"")
    ttl = headers.get(b"ttl", b"")
    params = {part.strip()[:2] for part in authorization[6:].split(b",")}
    return (authorization.startswith(b"vapid ") and {b"t=", b"k="} <= params
            and headers.get(b"content-encoding") == b"aes128gcm"
            and ttl.isdigit() and body_length > 0)


class PushSink(asyncio.Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.parser = httptools.HttpRequestParser(self)
        self.headers: dict[bytes, bytes] = {}
        self.url = b""
        self.body_length = 0

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_begin(self) -> None:
        self.headers, self.url, self.body_length = {}, b"", 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.body_length += len(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        if method == b"GET" and self.url == b"/stats":
            self.answer(200, json.dumps(STATS).encode())
        elif method == b"POST" and self.url == b"/reset":
            STATS.update(received=0, bad=0, first_at=None, last_at=None)
            STATS.pop("first_bad", None)
            self.answer(204)
        elif method == b"POST" and valid_push(self.headers, self.body_length):
            now = time.time()
            STATS["received"] += 1
            STATS["first_at"] = STATS["first_at"] or now
            STATS["last_at"] = now
            self.answer(201)
        else:
            STATS["bad"] += 1
            # What was wrong, once: the header names and the start of each value.
            STATS.setdefault("first_bad", {"method": method.decode(), "url": self.url.decode(),
                                           "body": self.body_length, "headers": {
                k.decode(): v[:24].decode("latin-1") for k, v in self.headers.items()}})
            self.answer(400)

    def answer(self, status: int, body: bytes = b"") -> None:
        reason = {200: b"OK", 201: b"Created", 204: b"No Content", 400: b"Bad Request"}[status]
        head = b"HTTP/1.1 %d %s\r\ncontent-length: %d\r\n" % (status, reason, len(body))
        if status == 200:
            head += b"content-type: application/json\r\n"
        self.transport.write(head + b"\r\n" + body)
        if not self.parser.should_keep_alive():
            self.transport.close()


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(PushSink, "127.0.0.1", port, backlog=1024)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1])))
