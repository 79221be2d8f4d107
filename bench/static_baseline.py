"""The baseline of ``public_stats.py``: a file served by the cards api's server stack.

    python bench/static_baseline.py FILE PORT

A FastAPI application, run by ``kaiku_shared.service.serve_api`` itself, i.e. with
exactly the cards api's uvicorn settings (one process, uvloop, httptools, no
access log, the same host), its heap settled the same way once started. It
serves FILE (the public statistics document, byte for byte) two ways:

- ``/static/<FILE's name>``: Starlette's ``StaticFiles``, the static-file server
  of this stack (a ``stat``, an open and a read per request; ``ETag`` and
  ``Last-Modified``, 304 on ``If-None-Match``). **The baseline of the target.**
- ``/memory``: the same bytes from memory with an ``ETag`` (304 on a match), as
  a plain route: the least this stack can do for a response of this size, with
  none of the services' middleware.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles

from kaiku_shared.service import serve_api, settle_heap
from kaiku_shared.settings import KaikuSettings


def build_app(path: Path) -> FastAPI:
    body = path.read_bytes()
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    headers = {"ETag": etag, "Cache-Control": "public, max-age=5"}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settle_heap()  # as every api does once started
        yield

    app = FastAPI(lifespan=lifespan, openapi_url=None)
    app.mount("/static", StaticFiles(directory=path.parent), name="static")

    @app.get("/memory")
    async def memory(request: Request) -> Response:
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    return app


def main() -> None:
    path, port = Path(sys.argv[1]).resolve(), int(sys.argv[2])
    serve_api(build_app(path), KaikuSettings(http_port=port), "static-baseline")


if __name__ == "__main__":
    main()
