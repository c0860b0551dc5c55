"""Playwright's `expect` for the test modules, importable without the package: then every
browser test is skipped (tests/e2e/conftest.py) before it could be used, and collecting them
must not fail with an ImportError."""

from __future__ import annotations

try:
    from playwright.sync_api import expect
except ImportError:  # the tests are skipped with the reason; see conftest.why_unavailable
    expect = None  # type: ignore[assignment]

__all__ = ["expect"]
