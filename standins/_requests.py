"""The model stand-in's request log: every model request, its body, and when its answer began, ended or was cut off."""

from __future__ import annotations

import copy
import threading
import time
from typing import Any, Literal, TypeAlias

# complete: the whole answer went out; error: a scripted error ended the stream; http_error: the answer was an
# HTTP error; rejected: the request was malformed (the real API would refuse it too); client_closed: the client
# hung up first; disconnected: a scripted disconnect dropped the connection; stopped: the stand-in shut down;
# failed: the stand-in itself broke (logged).
Outcome: TypeAlias = Literal[
    "complete", "error", "http_error", "rejected", "client_closed", "disconnected", "stopped", "failed"
]


class RequestRecord:
    """One request as `GET /_standin/requests` shows it; the handler thread fills it in as the answer goes out."""

    def __init__(self, log: RequestLog, fields: dict[str, Any]) -> None:
        self._log = log
        self._fields = fields

    def mark_turn(self, source: str) -> None:
        with self._log.lock:
            self._fields["turn"] = source

    def mark_first_byte(self, status: int) -> None:
        with self._log.lock:
            self._fields["status"] = status
            self._fields["first_byte_at"] = self._fields["first_byte_at"] or time.time()

    def mark_first_token(self) -> None:
        with self._log.lock:
            self._fields["first_token_at"] = self._fields["first_token_at"] or time.time()

    def mark_finished(self, outcome: Outcome) -> None:
        now = time.time()
        with self._log.lock:
            if self._fields["outcome"] is not None:
                return
            self._fields["outcome"] = outcome
            self._fields["finished_at"] = now
            if outcome == "client_closed":
                self._fields["client_closed"] = True
                self._fields["client_closed_at"] = now


class RequestLog:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._records: list[RequestRecord] = []

    def open(
        self,
        *,
        provider: str,
        method: str,
        path: str,
        model: str | None,
        stream: bool,
        headers: dict[str, str],
        body: Any,
    ) -> RequestRecord:
        with self.lock:
            record = RequestRecord(
                self,
                {
                    "id": len(self._records) + 1,
                    "provider": provider,
                    "method": method,
                    "path": path,
                    "model": model,
                    "stream": stream,
                    "headers": headers,
                    "body": body,
                    "turn": None,
                    "status": None,
                    "outcome": None,
                    "received_at": time.time(),
                    "first_byte_at": None,
                    "first_token_at": None,
                    "finished_at": None,
                    "client_closed": False,
                    "client_closed_at": None,
                },
            )
            self._records.append(record)
            return record

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(record._fields) for record in self._records]

    def clear(self) -> None:
        with self.lock:
            self._records.clear()
