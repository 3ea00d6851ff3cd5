"""The HTTP edge shared by every function: routes, what a route gets, what it answers, and the
request's log line, trace and CORS.

A function builds one router (`function_router`), registers its routes and hands
`router.dispatch` the Flask request that functions-framework gives it. A route gets a
`Context` and returns a `Reply` (JSON), a `StreamReply` or a `RedirectReply`.

- `router.py`   matching, authentication, and every refusal answered in the contract's shape
- `context.py`  the request as a route sees it: query, JSON body, upload, the client's connection
- `replies.py`  what a route answers, and the response sent for it
- `access.py`   request ids, traces, the request's log line, CORS
"""

from common.http.context import Context, Upload
from common.http.replies import AnyReply, RedirectReply, Reply, StreamReply
from common.http.router import ANY_QUERY, PUBLIC, Router, function_router

__all__ = [
    "ANY_QUERY",
    "PUBLIC",
    "AnyReply",
    "Context",
    "RedirectReply",
    "Reply",
    "Router",
    "StreamReply",
    "Upload",
    "function_router",
]
