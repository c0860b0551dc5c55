"""The site the browser talks to: `aikeedo.asgi:application` (pages and the chat and job
WebSockets) under uvicorn, in a background thread of the test process.

In-process, so the server and the test share one database (the test's, as pytest-django's
`live_server` does), the settings a test overrides, the in-memory channel layer, the local-memory
cache and the locmem email outbox (`django.core.mail.outbox`). Static files are served from the
finders, as `collectstatic` never runs in tests.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.sqlite3.base import DatabaseWrapper as SQLiteDatabaseWrapper

START_TIMEOUT = 30.0


class LiveASGIServer:
    """uvicorn serving the project's ASGI application on a free loopback port.

    `start()` returns once the port accepts connections; `wait_idle()` waits until no request,
    WebSocket or task the server started is left running (before the test database is flushed);
    `stop()` shuts it down."""

    def __init__(self) -> None:
        self.url = ""
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._baseline: set[asyncio.Task[Any]] = set()
        self._shared: dict[str, BaseDatabaseWrapper] = {}
        self._error: BaseException | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        import uvicorn
        from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

        from aikeedo.asgi import application

        self._share_in_memory_sqlite()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            ASGIStaticFilesHandler(application),
            lifespan="off",  # Channels' router has no lifespan protocol
            loop="asyncio",
            http="h11",
            ws="wsproto",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, args=(sock,), name="e2e-asgi-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"the e2e server did not start: {self._error!r}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the e2e server did not start within {START_TIMEOUT:.0f} s")
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{port}"
        self._baseline = self._call(self._tasks)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._unshare()

    def _run(self, sock: socket.socket) -> None:
        try:
            asyncio.run(self._serve(sock))
        except BaseException as exc:  # reported by start(); the thread must not die silently
            self._error = exc

    async def _serve(self, sock: socket.socket) -> None:
        self._loop = asyncio.get_running_loop()
        if self._shared:
            # Django's shared sync thread may hold a connection of its own from earlier tests
            # of this process: it takes the test's connection, as every new thread does.
            await sync_to_async(self._adopt_shared, thread_sensitive=True)()
        await self._server.serve(sockets=[sock])

    # ------------------------------------------------------------------ idleness

    def wait_idle(self, timeout: float = 15.0) -> bool:
        """Wait until every request, socket and task the server started has finished (a stream
        settling its credits after the browser went away, say), so nothing writes to the
        database while the test's rows are flushed. True when idle before `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not (self._call(self._tasks) - self._baseline):
                return True
            time.sleep(0.05)
        return False

    @staticmethod
    async def _tasks() -> set[asyncio.Task[Any]]:
        current = asyncio.current_task()
        return {task for task in asyncio.all_tasks() if task is not current and not task.done()}

    def _call(self, make: Callable[[], Any]) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(make(), self._loop).result(timeout=10)

    # ------------------------------------------------------------------ SQLite in memory

    def _share_in_memory_sqlite(self) -> None:
        """An in-memory SQLite test database lives in the test's connection: like Django's
        LiveServerThread, every server thread uses that connection (closing it is a no-op)."""
        for conn in connections.all():
            if isinstance(conn, SQLiteDatabaseWrapper) and conn.is_in_memory_db():
                conn.inc_thread_sharing()
                self._shared[conn.alias] = conn
        if self._shared:
            original = connections.create_connection

            def create_connection(alias: str) -> BaseDatabaseWrapper:
                return self._shared.get(alias) or original(alias)

            connections.create_connection = create_connection  # type: ignore[method-assign]  # restored by _unshare

    def _adopt_shared(self) -> None:
        for alias, conn in self._shared.items():
            connections[alias] = conn

    def _unshare(self) -> None:
        if not self._shared:
            return
        connections.__dict__.pop("create_connection", None)
        for conn in self._shared.values():
            conn.dec_thread_sharing()
        self._shared.clear()
