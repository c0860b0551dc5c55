"""Every signed-in page at a phone's width (390 px): nothing sticks out sideways, and no page
shows template syntax. The pages are found, not listed: every named route that needs no object
id and answers a signed-in GET with a whole HTML page, plus a conversation and a media job."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from django.test import Client

from tests.conftest import login
from tests.e2e import checks, world
from tests.e2e.conftest import E2E_MARKS

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.e2e.conftest import NewContext, SignedIn

pytestmark = E2E_MARKS

PHONE = 390
PUBLIC_PAGES = ["/", "/accounts/login/", "/accounts/signup/", "/accounts/password/reset/", "/billing/pricing/"]


def signed_in_pages(site: world.Site) -> tuple[list[str], list[str]]:
    """The pages to walk, and the routes that already fail on the server (a 5xx)."""
    client = login(Client(raise_request_exception=False), site.owner, site.workspace)
    objects = [f"/chat/{site.conversation.pk}/", f"/studio/images/?job={site.job.pk}"]
    pages: list[str] = []
    broken: list[str] = []
    for path in [*checks.routes_without_arguments(), *objects]:
        response = client.get(path)
        if response.status_code >= 500:
            broken.append(f"{path}: answers {response.status_code}")
        elif (
            response.status_code == 200
            and response.get("Content-Type", "").startswith("text/html")
            and b"<html" in response.content[:2000].lower()
        ):
            pages.append(path)
    return pages, broken


def walk(page: Page, paths: list[str], check: Callable[[Page], str]) -> list[str]:
    problems = []
    for path in paths:
        response = page.goto(path)
        status = response.status if response is not None else 0
        if status >= 500:
            problems.append(f"{path}: answers {status}")
            continue
        found = check(page)
        if found:
            problems.append(f"{path}: {found}")
    return problems


def report(problems: list[str], what: str) -> str:
    return f"{len(problems)} page(s) {what}:\n" + "\n".join(problems)


@pytest.fixture
def site(live_url: str) -> world.Site:
    return world.site()


def test_signed_in_pages_fit_a_phone_screen(site: world.Site, signed_in: SignedIn) -> None:
    pages, broken = signed_in_pages(site)
    assert len(pages) >= 15, f"the walk found only {pages}"
    phone = signed_in(site.owner, site.workspace, width=PHONE)

    problems = broken + walk(phone, pages, checks.overflow)

    assert not problems, report(problems, f"wider than {PHONE} px")


def test_signed_in_pages_show_no_template_syntax(site: world.Site, signed_in: SignedIn) -> None:
    pages, broken = signed_in_pages(site)
    phone = signed_in(site.owner, site.workspace, width=PHONE)

    problems = broken + walk(phone, pages, checks.template_syntax)

    assert not problems, report(problems, "showing template syntax")


def test_public_pages_fit_a_phone_screen(new_context: NewContext) -> None:
    world.seed_catalog()
    phone = new_context(width=PHONE).new_page()

    problems = walk(phone, PUBLIC_PAGES, lambda page: checks.overflow(page) or checks.template_syntax(page))

    assert not problems, report(problems, f"wider than {PHONE} px or showing template syntax")
