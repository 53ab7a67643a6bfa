"""The bare endpoint of the benches: a trivial FastAPI app under the uvicorn settings that
``tidings serve`` uses (tidings.cli.serve), so that a ratio against it is a ratio against the
stack itself, not against the code on top.

    python bench/_bare.py PORT

``POST /send`` parses the JSON body and answers 202 with a request id, as Tidings' /send
does; ``POST /webhooks/bare`` reads the body and answers 200; ``GET /health`` answers 200.
"""

from __future__ import annotations

import secrets
import sys
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/send")
async def send(request: Request) -> JSONResponse:
    body: Any = await request.json()
    if not isinstance(body, dict) or "message" not in body:
        return JSONResponse({"message": "message is required"}, status_code=400)
    return JSONResponse({"requestId": "1-" + secrets.token_hex(12)}, status_code=202)


@app.post("/webhooks/bare")
async def webhook(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"message": "ok"})


if __name__ == "__main__":
    # The same settings as tidings.cli.serve (loop and http left to uvicorn's "auto").
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        log_config=None,
        timeout_graceful_shutdown=30,
    )
    uvicorn.Server(config).run()
