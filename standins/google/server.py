"""The Google stand-in's server: every API's routes in one table, the handler that serves them
and logs each API request, `GoogleStandin` for tests, and the command line."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import time
from collections.abc import Sequence
from types import FrameType
from typing import NoReturn
from urllib.parse import parse_qs, urlsplit

from standins.google import calendar, control, gmail, oauth
from standins.google.routing import Call, Route, run
from standins.google.state import ACCESS_TOKEN_LIFETIME_S, GoogleState, OAuthClient
from standins.google.wire import Reply, StandinError, api_error, rfc3339
from standins.local_server import JsonHandler, LocalServer, Server

logger = logging.getLogger("standins.google")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8091
DEFAULT_CLIENT_ID = "cscx-local.apps.googleusercontent.com"
DEFAULT_CLIENT_SECRET = "cscx-local-secret"
# Query parameters whose values are secrets: the request log keeps their names only.
SECRET_PARAMS = frozenset({"token", "code", "code_verifier", "client_secret", "access_token", "refresh_token"})

ROUTES: tuple[Route, ...] = (*oauth.ROUTES, *gmail.ROUTES, *calendar.ROUTES, *control.ROUTES)


def find_route(method: str, path: str) -> tuple[Route | None, dict[str, str]]:
    for route in ROUTES:
        match = route.pattern.fullmatch(path)
        if match and route.method == method:
            return route, match.groupdict()
    return None, {}


class _Server(Server):
    def __init__(self, address: tuple[str, int], state: GoogleState) -> None:
        super().__init__(address, _RequestHandler)
        self.state = state


class _RequestHandler(JsonHandler):
    server: _Server
    server_version = "ESF"
    sys_version = ""
    logger = logger

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def _serve(self) -> None:
        state = self.server.state
        body = self.read_body()
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        call = Call(self.command, parts.path, query, self.headers, body, state)
        route, call.params = find_route(self.command, parts.path)
        injected = False
        try:
            if route is None:
                raise api_error(404, f"Not Found: {self.command} {parts.path}", "notFound")
            reply, injected = run(route, call)
        except StandinError as exc:
            reply = exc.reply
        except Exception:
            logger.exception("Google stand-in failed on %s %s", self.command, parts.path)
            reply = api_error(500, "Internal error in the Google stand-in", "backendError").reply
        if route is not None and route.api is not None:
            # Recorded before the answer goes out: a client that reads the log once it has its
            # answer always finds its request there, and Google served the request even when its
            # caller is gone by the time the answer goes out (a worker killed while waiting).
            self._record(state, route.api, call, reply, injected)
        self.send(reply.status, reply.body, content_type=reply.content_type, headers=reply.headers)

    def _record(self, state: GoogleState, api: str, call: Call, reply: Reply, injected: bool) -> None:
        query = {k: (["[redacted]"] * len(v) if k in SECRET_PARAMS else v) for k, v in call.query.items()}
        entry = {
            "at": rfc3339(time.time()),
            "method": call.method,
            "path": call.path,
            "query": query,
            "api": api,
            "status": reply.status,
            "account": call.token.email if call.token is not None else None,
            "injected": injected,
        }
        with state.lock:
            state.requests.append(entry)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The default line carries the query string, where /revoke takes its token: log the path only.
        logger.debug("%s %s -> %s", self.command, urlsplit(self.path).path, code)


class GoogleStandin(LocalServer):
    """The stand-in as a server object: ``GoogleStandin(host, port).start()``, ``.url``, ``.stop()``.

    Port 0 takes a free port. ``clients`` are the OAuth clients known from the start (and after
    every reset); by default one client, ``DEFAULT_CLIENT_ID``, accepting any loopback redirect URI.
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        clients: Sequence[OAuthClient] | None = None,
        access_token_lifetime_s: int = ACCESS_TOKEN_LIFETIME_S,
    ) -> None:
        known = clients if clients is not None else [OAuthClient(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)]
        self.state = GoogleState(known, access_token_lifetime_s)
        super().__init__(_Server((host, port), self.state), name="google-standin")


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: flags win over GOOGLE_OAUTH_CLIENT_ID / GOOGLE_OAUTH_CLIENT_SECRET, which win over defaults."""
    parser = argparse.ArgumentParser(prog="python -m standins.google", description="A local stand-in for Google.")
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--client-id", default=os.environ.get("GOOGLE_OAUTH_CLIENT_ID") or DEFAULT_CLIENT_ID)
    parser.add_argument(
        "--client-secret", default=os.environ.get("GOOGLE_OAUTH_CLIENT_SECRET") or DEFAULT_CLIENT_SECRET
    )
    parser.add_argument(
        "--redirect-uri",
        action="append",
        help="a registered redirect URI (repeatable); without any, every loopback URI is accepted",
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    uris = tuple(args.redirect_uri or ()) or None
    standin = GoogleStandin(args.host, args.port, clients=[OAuthClient(args.client_id, args.client_secret, uris)])
    signal.signal(signal.SIGTERM, _interrupt)
    logger.info("Google stand-in listening on %s (client %s)", standin.url, args.client_id)
    try:
        standin.serve_forever()
    except KeyboardInterrupt:
        logger.info("Google stand-in stopping")
    finally:
        standin.stop()


def _interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt(f"signal {signum}")
