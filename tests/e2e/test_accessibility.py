"""axe-core on the main pages: no serious or critical violation. axe-core comes from npm
(`node_modules/axe-core`, installed by `make install`) and is injected into each page."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.e2e import checks, world
from tests.e2e.conftest import AXE_SCRIPT, E2E_MARKS

if TYPE_CHECKING:
    from tests.e2e.conftest import NewContext, SignedIn

pytestmark = E2E_MARKS

SIGNED_IN_PAGES = {
    "dashboard": "/dashboard/",
    "chat list": "/chat/",
    "conversation": "/chat/{conversation}/",
    "images studio": "/studio/images/",
    "billing": "/billing/",
    "members": "/workspaces/current/members/",
    "API keys": "/api-keys/",
    "profile": "/account/profile/",
}
PUBLIC_PAGES = {
    "login": "/accounts/login/",
    "signup": "/accounts/signup/",
    "pricing": "/billing/pricing/",
}


@pytest.fixture(scope="session")
def axe_script() -> Path:
    if not AXE_SCRIPT.exists():
        pytest.skip(
            f"e2e: no axe-core at {AXE_SCRIPT.relative_to(AXE_SCRIPT.parents[2])} (npm ci, run by make install)"
        )
    return AXE_SCRIPT


def violations_report(path: str, found: list[str]) -> str:
    return f"{path}: {len(found)} serious or critical axe-core violation(s):\n" + "\n".join(found)


@pytest.mark.parametrize("path", list(SIGNED_IN_PAGES.values()), ids=list(SIGNED_IN_PAGES))
def test_signed_in_page_has_no_serious_accessibility_violation(
    path: str, axe_script: Path, signed_in: SignedIn
) -> None:
    site = world.site()
    page = signed_in(site.owner, site.workspace)
    path = path.format(conversation=site.conversation.pk)
    response = page.goto(path)
    assert response is not None
    assert response.ok, f"{path} answered {response.status}"

    found = checks.axe_violations(page, axe_script)

    assert not found, violations_report(path, found)


@pytest.mark.parametrize("path", list(PUBLIC_PAGES.values()), ids=list(PUBLIC_PAGES))
def test_public_page_has_no_serious_accessibility_violation(
    path: str, axe_script: Path, new_context: NewContext
) -> None:
    world.seed_catalog()
    page = new_context().new_page()
    response = page.goto(path)
    assert response is not None
    assert response.ok, f"{path} answered {response.status}"

    found = checks.axe_violations(page, axe_script)

    assert not found, violations_report(path, found)
