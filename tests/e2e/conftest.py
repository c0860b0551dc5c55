"""Browser tests: Debian's Chromium driven by Playwright against the real ASGI application.

The site runs in this process (`tests/e2e/server.py`) on the test database, so tests build rows
with the services and factories, read `django.core.mail.outbox`, and what the browser does is
committed where the test can see it (`transactional_db`, as with pytest-django's
`live_server`). One Chromium per test process, a fresh context (cookies, storage) per test.

Without Chromium (`/usr/bin/chromium`, or `E2E_CHROMIUM`) or the `playwright` package every
test here is skipped with one reason. On a failure each open page is saved (a screenshot and
its HTML) under `.e2e-artifacts/<test>/` and the paths are added to the failure report.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import shutil
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest
from django.conf import settings
from django.test import Client

from apps.accounts.models import User
from apps.workspaces.models import Workspace
from tests.conftest import login
from tests.e2e.server import LiveASGIServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium"))
# Without the background-networking flags Chromium keeps calling home at every start (there is
# no network here: each attempt waits for its time-out).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = ROOT / ".e2e-artifacts"
AXE_SCRIPT = ROOT / "node_modules" / "axe-core" / "axe.min.js"
TIMEOUT_MS = 15_000
DESKTOP = {"width": 1280, "height": 900}
# Every browser test: the `e2e` marker; static files are served through Django's
# FileResponse, whose synchronous iterator Django's ASGI handler warns about (fine in tests).
E2E_MARKS = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators"),
]
# The browser contexts a test opened, for saving its pages when it fails.
OPEN_CONTEXTS = pytest.StashKey["list[BrowserContext]"]()


SKIP_PREFIX = "e2e:"


def why_unavailable() -> str:
    """Why the browser tests cannot run on this machine; empty when they can."""
    if not CHROMIUM.exists():
        return f"{SKIP_PREFIX} no Chromium at {CHROMIUM} (apt-get install chromium, or set E2E_CHROMIUM)"
    if importlib.util.find_spec("playwright") is None:
        return f"{SKIP_PREFIX} the playwright package is not installed (make install)"
    return ""


@pytest.fixture(scope="session", autouse=True)
def _e2e_available() -> None:
    """One skip, one summary line, for every browser test when the browser is missing."""
    reason = why_unavailable()
    if reason:
        pytest.skip(reason)


# ---------------------------------------------------------------------------- the server


@pytest.fixture(scope="session")
def e2e_server(django_db_setup: None) -> Iterator[LiveASGIServer]:
    """The application on a free loopback port for this test process (one per xdist worker)."""
    server = LiveASGIServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def live_url(transactional_db: None, e2e_server: LiveASGIServer, settings: Any) -> Iterator[str]:
    """The server's base URL for one test. Links in emails point at it (`SITE_URL`). Once the
    test's browser contexts are closed, waits for the server to finish what they started
    before the test's rows are flushed."""
    settings.SITE_URL = e2e_server.url
    yield e2e_server.url
    if not e2e_server.wait_idle():
        pytest.fail("the e2e server was still busy 15 s after the test's browser closed")


# ---------------------------------------------------------------------------- the browser


def _leave_no_running_loop() -> Callable[[], None]:
    """Playwright's sync API marks its event loop as running in the test's thread after each
    call. Django then takes every ORM call of the test (and the flush after it) for async code
    and refuses it, and later tests in this process would see a running loop too. Mark the loop
    running only for the span of each Playwright call. Returns the undo."""
    from playwright._impl._sync_base import EventInfo, SyncBase

    original_sync = SyncBase._sync
    original_value: property = EventInfo.__dict__["value"]
    read_value = original_value.fget
    assert read_value is not None

    def _sync(self: Any, coro: Any) -> Any:
        asyncio._set_running_loop(self._loop)
        try:
            return original_sync(self, coro)
        finally:
            asyncio._set_running_loop(None)

    def value(self: Any) -> Any:  # the `expect_*` context managers wait through this
        asyncio._set_running_loop(self._sync_base._loop)
        try:
            return read_value(self)
        finally:
            asyncio._set_running_loop(None)

    SyncBase._sync = _sync  # type: ignore[assignment,method-assign]
    EventInfo.value = property(value)  # type: ignore[assignment,method-assign]

    def undo() -> None:
        SyncBase._sync = original_sync  # type: ignore[method-assign]
        EventInfo.value = original_value  # type: ignore[assignment,method-assign]

    return undo


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Chromium for this test process."""
    from playwright.sync_api import sync_playwright

    undo = _leave_no_running_loop()
    playwright = sync_playwright().start()
    loop = playwright._loop
    asyncio._set_running_loop(None)
    try:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
    finally:
        asyncio._set_running_loop(loop)
        try:
            playwright.stop()
        finally:
            asyncio._set_running_loop(None)
            undo()


class NewContext(Protocol):
    def __call__(self, *, width: int = ..., height: int = ...) -> BrowserContext: ...


@pytest.fixture
def new_context(browser: Browser, live_url: str, request: pytest.FixtureRequest) -> Iterator[NewContext]:
    """`new_context(width=390)`: a fresh browser context (its own cookies) on the server; all
    are closed after the test. The pages of each are saved when the test fails."""
    made: list[BrowserContext] = []
    request.node.stash[OPEN_CONTEXTS] = made

    def make(*, width: int = DESKTOP["width"], height: int = DESKTOP["height"]) -> BrowserContext:
        context = browser.new_context(base_url=live_url, viewport={"width": width, "height": height})
        context.set_default_timeout(TIMEOUT_MS)
        made.append(context)
        return context

    yield make
    for context in made:
        context.close()


@pytest.fixture
def page(new_context: NewContext) -> Page:
    """A signed-out page at desktop width."""
    return new_context().new_page()


def sign_in(context: BrowserContext, base_url: str, user: User, workspace: Workspace | None = None) -> None:
    """Sign `user` in for `context` without the login form: the session cookie of a test
    client's `force_login` (with `workspace` current), set for the server's origin."""
    client = login(Client(), user, workspace)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie.value, "url": base_url}])


class SignedIn(Protocol):
    def __call__(self, user: User, workspace: Workspace | None = None, *, width: int = ...) -> Page: ...


@pytest.fixture
def signed_in(new_context: NewContext, live_url: str) -> SignedIn:
    """`signed_in(user, workspace, width=...)`: a page of a new context where `user` is signed
    in with `workspace` current."""

    def make(user: User, workspace: Workspace | None = None, *, width: int = DESKTOP["width"]) -> Page:
        context = new_context(width=width)
        sign_in(context, live_url, user, workspace)
        return context.new_page()

    return make


# ---------------------------------------------------------------------------- failures


@dataclass
class Saved:
    paths: list[Path] = field(default_factory=list)


def _slug(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.split("::", 1)[-1])[:120] or "test"


def save_pages(item: pytest.Item) -> Saved:
    """A screenshot and the HTML of every page the test had open."""
    saved = Saved()
    contexts = item.stash.get(OPEN_CONTEXTS, [])
    pages = [page for context in contexts for page in context.pages]
    if not pages:
        return saved
    folder = ARTIFACTS / f"{Path(str(item.path)).stem}-{_slug(item.nodeid)}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for number, open_page in enumerate(pages, start=1):
        try:
            shot = folder / f"page{number}.png"
            open_page.screenshot(path=str(shot), full_page=True)
            html = folder / f"page{number}.html"
            html.write_text(f"<!-- {open_page.url} -->\n{open_page.content()}", encoding="utf-8")
            saved.paths += [shot, html]
        except Exception as exc:  # a crashed page must not hide the test's own failure
            note = folder / f"page{number}.error.txt"
            note.write_text(f"{open_page.url}: could not be saved: {exc!r}\n", encoding="utf-8")
            saved.paths.append(note)
    return saved


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    reason = str(report.longrepr[2]) if report.skipped and isinstance(report.longrepr, tuple) else ""
    if reason.removeprefix("Skipped: ").startswith(SKIP_PREFIX):
        # pytest reports a fixture's skip at each test: one place makes it one summary line.
        report.longrepr = (__file__, why_unavailable.__code__.co_firstlineno, reason)
    if report.when == "call" and report.failed and item.stash.get(OPEN_CONTEXTS, None):
        saved = save_pages(item)
        if saved.paths:
            listing = "\n".join(str(path.relative_to(ROOT)) for path in saved.paths)
            report.sections.append(("e2e: pages saved at the failure", listing))
    return report
