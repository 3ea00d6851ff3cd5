"""A Firestore that goes away on cue: a gRPC proxy in front of the emulator.

For the tests that need the database to fail at one chosen moment — right after an effect's
commit, before its answer is read back — with the code under test unchanged: a function (or an
in-process instance) is pointed at the proxy by `FIRESTORE_EMULATOR_HOST` and talks to it with
the real client, and the fault happens on the wire, where a real outage would. Each call is
forwarded as it came, bytes in and bytes out; only Commit requests are decoded, to see which
documents they write.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures
from types import TracebackType
from typing import Any, NoReturn, Self

import grpc

SERVICE = "/google.firestore.v1.Firestore/"
# Firestore's methods that stream their answers, or both ways; every other one is unary.
SERVER_STREAMING = frozenset({"BatchGetDocuments", "RunQuery", "RunAggregationQuery", "ExecutePipeline"})
BIDI_STREAMING = frozenset({"Write", "Listen"})
# Who sent it, and the framing: the proxy's own channel sets these.
_NOT_FORWARDED = ("user-agent", "grpc-", ":")


class FirestoreProxy:
    """Forwards Firestore's gRPC calls to `upstream` (the emulator's host:port) until told to fail."""

    def __init__(self, upstream: str) -> None:
        self._upstream = grpc.insecure_channel(upstream)
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="firestore-proxy"))
        self._server.add_generic_rpc_handlers((_Forwarder(self),))
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._lock = threading.Lock()
        self._down = False
        self._down_after_commit_to: str | None = None
        self.refused: list[str] = []  # the methods of the calls refused while down, in order
        self.calls: list[str] = []  # the methods of every call, in order (a request's round trips)
        self.called_at: list[float] = []  # when each of them came, time.time()

    @property
    def address(self) -> str:
        """host:port, as FIRESTORE_EMULATOR_HOST takes it."""
        return f"127.0.0.1:{self.port}"

    def go_down_after_commit_to(self, collection: str) -> None:
        """Once a commit that writes a document of `collection` has succeeded, refuse every call
        (UNAVAILABLE, as an unreachable database) until `come_back()`."""
        with self._lock:
            self._down_after_commit_to = collection

    def forget_calls(self) -> None:
        with self._lock:
            self.calls.clear()
            self.called_at.clear()

    def calls_before(self, moment: float) -> list[str]:
        """The methods of the calls that came before `moment` (time.time()), in order."""
        with self._lock:
            return [method for method, at in zip(self.calls, self.called_at, strict=True) if at < moment]

    def come_back(self) -> None:
        with self._lock:
            self._down = False
            self._down_after_commit_to = None

    def _refuse_if_down(self, method: str, context: grpc.ServicerContext) -> None:
        with self._lock:
            self.calls.append(method.removeprefix(SERVICE))
            self.called_at.append(time.time())
            down = self._down
            if down:
                self.refused.append(method.removeprefix(SERVICE))
        if down:
            context.abort(grpc.StatusCode.UNAVAILABLE, "the database is unreachable (a test's fault)")

    def _committed(self, request: bytes) -> None:
        from google.cloud.firestore_v1.types import CommitRequest

        with self._lock:
            collection = self._down_after_commit_to
            if collection is None:
                return
            commit = CommitRequest.deserialize(request)
            names = [write.update.name or write.delete for write in commit.writes]
            if any(name.split("/documents/", 1)[-1].split("/", 1)[0] == collection for name in names):
                self._down = True

    # -- forwarding ----------------------------------------------------------------------

    def unary(self, method: str, request: bytes, context: grpc.ServicerContext) -> bytes:
        self._refuse_if_down(method, context)
        call = self._upstream.unary_unary(method)
        try:
            answer: bytes = call(request, metadata=_metadata(context), timeout=context.time_remaining())
        except grpc.RpcError as error:
            _abort_as(error, context)
        if method == SERVICE + "Commit":
            self._committed(request)
        return answer

    def server_streaming(self, method: str, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        self._refuse_if_down(method, context)
        call = self._upstream.unary_stream(method)
        try:
            yield from call(request, metadata=_metadata(context), timeout=context.time_remaining())
        except grpc.RpcError as error:
            _abort_as(error, context)

    def bidi_streaming(self, method: str, requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        self._refuse_if_down(method, context)
        call = self._upstream.stream_stream(method)
        try:
            yield from call(requests, metadata=_metadata(context), timeout=context.time_remaining())
        except grpc.RpcError as error:
            _abort_as(error, context)

    # -- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> Self:
        self._server.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.stop(grace=None).wait()
        self._upstream.close()


class _Forwarder:
    """Every method of the service, to the proxy, with requests and answers left as bytes (a
    generic handler: grpc asks it for each call's method handler)."""

    def __init__(self, proxy: FirestoreProxy) -> None:
        self.proxy = proxy

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        name = method.removeprefix(SERVICE)
        proxy = self.proxy
        if name in BIDI_STREAMING:
            return grpc.stream_stream_rpc_method_handler(
                lambda requests, context: proxy.bidi_streaming(method, requests, context)
            )
        if name in SERVER_STREAMING:
            return grpc.unary_stream_rpc_method_handler(
                lambda request, context: proxy.server_streaming(method, request, context)
            )
        return grpc.unary_unary_rpc_method_handler(lambda request, context: proxy.unary(method, request, context))


def _metadata(context: grpc.ServicerContext) -> list[tuple[str, Any]]:
    return [(key, value) for key, value in context.invocation_metadata() if not key.startswith(_NOT_FORWARDED)]


def _abort_as(error: grpc.RpcError, context: grpc.ServicerContext) -> NoReturn:
    """Answer the caller with the emulator's own error (`abort` raises)."""
    context.abort(error.code(), error.details() or "")  # type: ignore[attr-defined]
    raise AssertionError("grpc's abort returned")
