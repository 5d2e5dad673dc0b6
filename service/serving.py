"""How `duiyi serve` runs uvicorn: a stop on SIGTERM (Docker, systemd) or SIGINT (Ctrl+C) that is
graceful from start to end, and says so in one line.

uvicorn stops well on either signal (no new connections, the requests in flight get their time,
then the app's shutdown stops the job runners and the webhook dispatcher), but then raises the
signal again once it is done, "as the process would have done without it": the process ended with
status 143 for SIGTERM, which Docker and systemd report as a failure, and for SIGINT with
asyncio's CancelledError and a KeyboardInterrupt traceback. And a request still in flight when
the time given to them is up was cancelled with an "Exception in ASGI application" traceback in the
log and a plain-text 500 to its client. Here a graceful stop ends with status 0, a request cut short
is answered 503 with Retry-After (a CMS retries it, on another instance or on this one restarted),
and the log holds one line saying how the stop went. A second Ctrl+C still stops at once, as
uvicorn has it (status 130).

It serves HTTP with h11, whose limit on a request's head (URL and headers, 16 KiB) is applied here
to a head that arrives whole as well as to one still arriving (`BoundedHeadProtocol`): uvicorn's
default protocol, httptools, has no limit, so a client could make it hold megabytes of headers.
The control characters httptools refused in a URL or a header, and h11 lets through, are refused too.
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import socket
import time
from types import FrameType
from typing import TYPE_CHECKING, Any

import h11
import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from service.api.errors import shutting_down

if TYPE_CHECKING:
    from service.jobs.runner import RunnerPool

log = logging.getLogger(__name__)

# The most a request's URL and headers may take together, in bytes: h11's own limit on a head that
# has not all arrived yet, which `BoundedHeadProtocol` applies to a whole one too. No request the
# API takes comes near it (its longest query, a CMS id, is 200 characters).
MAX_HEAD_BYTES = 16 * 1024
# Control characters, HTAB aside: h11 refuses only NUL, CR and LF in a header's value or in the
# URL, where httptools (uvicorn's default, which served duiyi before) refused them all.
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


class _BoundedHead(h11.Connection):
    """h11's server side, which refuses a request head over `max_head` bytes however it arrived,
    and one with a control character in its URL or a header's value. h11 checks its limit only
    while a head is incomplete: one that came whole in a single read (100 KB sent at once over
    loopback does) went through whatever its size."""

    def __init__(self, max_head: int) -> None:
        super().__init__(h11.SERVER, max_incomplete_event_size=max_head)
        self.max_head = max_head

    def next_event(self) -> h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]:
        event = super().next_event()
        if isinstance(event, h11.Request):
            # uvicorn answers these as it does h11's own refusals: 400, plain text, connection closed.
            headers = event.headers.raw_items()
            # As sent, give or take optional white space: "GET /path HTTP/1.1\r\n", "name: value\r\n"…, "\r\n".
            size = len(event.method) + len(event.target) + 12 + sum(len(n) + len(v) + 4 for n, v in headers) + 2
            if size > self.max_head:
                raise h11.RemoteProtocolError(
                    f"request head of {size} bytes, over {self.max_head}", error_status_hint=431
                )
            if _CONTROL.search(event.target) or any(_CONTROL.search(value) for _, value in headers):
                raise h11.RemoteProtocolError("a control character in the request's URL or headers")
        return event


class BoundedHeadProtocol(H11Protocol):
    """uvicorn's h11 protocol with a request's URL and headers held to the config's
    `h11_max_incomplete_event_size` bytes (`MAX_HEAD_BYTES` in `serve`), whole or arriving, and
    free of control characters: else uvicorn's plain-text 400 `Invalid HTTP request received.`,
    and the connection closed."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, object],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.conn = _BoundedHead(config.h11_max_incomplete_event_size or MAX_HEAD_BYTES)


class CutShortAnswer:
    """ASGI middleware, outermost: a request that uvicorn cancels because the service is stopping
    and the time given to requests in flight is up is answered 503 `shutting_down` with
    Retry-After and Connection: close, when its answer had not begun (else its connection is
    closed, as before), and counted (`cut`), in place of uvicorn's traceback and plain 500.
    A cancellation while the server is not stopping is no concern of this and goes on as it came."""

    def __init__(self, app: ASGIApp, graceful_s: int) -> None:
        self.app = app
        self.graceful_s = graceful_s
        self.server: uvicorn.Server | None = None  # set once made: cancellations count only while it stops
        self.cut = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except asyncio.CancelledError:
            if self.server is None or not self.server.should_exit:
                raise
            self.cut += 1
            if started:
                return  # uvicorn closes the connection of an answer left incomplete
            answer = shutting_down(self.graceful_s)
            await answer(scope, receive, send)


class GracefulServer(uvicorn.Server):
    """uvicorn's server, which stops as uvicorn does on SIGTERM and SIGINT but then returns instead
    of raising the signal again (see the module's docstring). `stop_signal` is the signal that
    stopped it (None: none did), `stop_started` when it came (time.monotonic())."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.stop_signal: int | None = None
        self.stop_started: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # uvicorn's own, less the record of the signal that it raises again once stopped. (No
        # logging here: a signal handler may run in the middle of a log line being written.)
        if self.stop_signal is None:
            self.stop_signal, self.stop_started = sig, time.monotonic()
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True


# How `duiyi serve` reads HTTP, for uvicorn.Config; the tests' live servers (tests/conftest.py)
# read it the same way, so that they test the HTTP layer production runs.
HTTP_OPTIONS: dict[str, Any] = {"http": BoundedHeadProtocol, "h11_max_incomplete_event_size": MAX_HEAD_BYTES}


def serve(app: ASGIApp, sock: socket.socket, *, log_level: str, graceful_s: int, runners: RunnerPool | None) -> int:
    """Serve `app` on `sock` until SIGTERM or SIGINT; the command's exit status: 0 once stopped
    gracefully (requests in flight had up to `graceful_s` to finish, the app's shutdown ran), 130
    when a second SIGINT cut the stop short. Logs the stop in one line."""
    cut = CutShortAnswer(app, graceful_s)
    # log_config=None: uvicorn's lines go through the handler `service.logs.configure` set up.
    config = uvicorn.Config(
        cut,
        log_level=log_level,
        log_config=None,
        timeout_graceful_shutdown=graceful_s,
        **HTTP_OPTIONS,
    )
    server = GracefulServer(config)
    cut.server = server
    server.run(sockets=[sock])
    how = signal.Signals(server.stop_signal).name if server.stop_signal is not None else "request"
    took = time.monotonic() - server.stop_started if server.stop_started is not None else 0.0
    if server.force_exit:
        log.warning(
            "serve: stopped at once on a second signal (SIGINT), %.1f s after the first (%s): requests in flight were "
            "cut and the job runners not waited for (their jobs are taken over once their leases lapse)",
            took,
            how,
        )
        return 128 + signal.SIGINT
    requests = (
        "the requests in flight finished"
        if not cut.cut
        else f"{cut.cut} request(s) still in flight after {graceful_s} s were cut short (answered 503 "
        "shutting_down where their answer had not begun)"
    )
    stuck = sum(thread.is_alive() for thread in runners.threads) if runners is not None else 0
    if runners is None:
        jobs = "no job runners in this process"
    elif stuck:
        jobs = f"{stuck} job runner(s) did not stop in time (their jobs are taken over once their leases lapse)"
    else:
        jobs = "the job runners stopped, their unfinished jobs back in the queue"
    log.info("serve: stopped on %s in %.1f s: %s; %s", how, took, requests, jobs)
    return 0
