"""A small function exercising every kind of route and reply the HTTP edge offers, for the
in-process tests (`tests/test_http_edge.py`); it needs no emulator."""

from __future__ import annotations

import time
from collections.abc import Iterator

import flask
import functions_framework
from pydantic import BaseModel, ConfigDict, Field

from common.auth import CloudTasks
from common.errors import ApiError, Code
from common.http import PUBLIC, Context, RedirectReply, Reply, StreamReply, function_router

router = function_router("edge")


class Greeting(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    name: str = Field(min_length=1, max_length=20)
    times: int = Field(default=1, ge=1, le=3)


@router.route("GET", "/callback", query={"code", "state"}, auth=PUBLIC)
def callback(ctx: Context) -> RedirectReply:
    query = ctx.query()
    return RedirectReply(f"https://app.example/settings?code={query.get('code', '')}")


@router.route("GET", "/private")
def private(ctx: Context) -> Reply:
    return Reply({"uid": ctx.uid})


@router.route("POST", "/greetings", auth=PUBLIC)
def greet(ctx: Context) -> Reply:
    greeting = ctx.parse(Greeting)
    return Reply({"text": " ".join([f"hello {greeting.name}"] * greeting.times)}, 201)


@router.route("POST", "/uploads", auth=PUBLIC)
def upload(ctx: Context) -> Reply:
    body = ctx.upload(limit=64 * 1024)
    files = {name: len(file.read()) for name, file in body.files.items()}
    return Reply({"fields": dict(body.fields), "files": files}, 201)


@router.route("GET", "/stream", query={"parts", "fail_at", "pause"}, auth=PUBLIC)
def stream(ctx: Context) -> StreamReply:
    query = ctx.query()
    parts = int(query.get("parts", "3"))
    fail_at = int(query["fail_at"]) if "fail_at" in query else None
    pause = float(query.get("pause", "0"))

    def produce() -> Iterator[bytes]:
        for n in range(parts):
            if n:
                time.sleep(pause)
            if n == fail_at:
                if n == 0:
                    raise ApiError(Code.ABORTED, "Refused before the first byte.")
                raise RuntimeError("the producer broke mid-stream")
            yield f"data: {n}\n\n".encode()

    return StreamReply(produce(), "text/event-stream", headers={"Cache-Control": "no-cache"})


@router.route("GET", "/crash", auth=PUBLIC)
def crash(ctx: Context) -> Reply:
    raise RuntimeError("secret internal detail")


@router.route("POST", "/execute", auth=CloudTasks())
def execute(ctx: Context) -> Reply:
    return Reply({"executed": True})


@functions_framework.http
def edge(request: flask.Request) -> flask.Response:
    return router.dispatch(request)
