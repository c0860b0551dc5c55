"""Journeys of a newcomer: sign up and confirm from the email, then run a team: create a
workspace, switch between workspaces, invite a teammate who accepts in their own browser."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from django.core import mail

from tests.e2e import world
from tests.e2e.conftest import E2E_MARKS
from tests.e2e.playwright_api import expect

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.e2e.conftest import SignedIn

pytestmark = E2E_MARKS

NEW_EMAIL = "newcomer@example.com"
NEW_PASSWORD = "plum-orchard-lantern-7"


def link_in_last_mail(to: str, path_part: str) -> str:
    """The link containing `path_part` in the last email sent to `to`."""
    [message] = [m for m in mail.outbox if to in m.to][-1:]
    body = str(message.body)
    match = re.search(rf"https?://\S*{re.escape(path_part)}\S*", body)
    assert match, f"no link with {path_part!r} in the email to {to}:\n{body}"
    return match.group(0)


def test_sign_up_confirm_from_the_email_and_land_on_the_dashboard(page: Page) -> None:
    page.goto("/accounts/signup/")
    # allauth's labels end with a colon ("Email:").
    page.get_by_label(re.compile(r"^Email:?$")).fill(NEW_EMAIL)
    page.get_by_label(re.compile(r"^Password:?$")).fill(NEW_PASSWORD)
    page.get_by_label(re.compile(r"^Password \(again\):?$")).fill(NEW_PASSWORD)
    page.get_by_role("button", name=re.compile("sign up", re.IGNORECASE)).click()

    expect(page.get_by_role("heading", level=1)).to_contain_text(re.compile("verify", re.IGNORECASE))
    expect(page.get_by_text(NEW_EMAIL).first).to_be_visible()

    page.goto(link_in_last_mail(NEW_EMAIL, "/accounts/confirm-email/"))
    page.get_by_role("button", name="Confirm").click()

    expect(page).to_have_url(re.compile(r"/dashboard/$"))
    # Signing up made a personal workspace, named after the person, and it is the current one.
    page.goto("/workspaces/")
    expect(page.get_by_role("row").filter(has_text="newcomer's workspace")).to_contain_text("current")
    page.goto("/account/profile/")
    expect(page.get_by_role("heading", name="Profile")).to_be_visible()


def test_create_a_workspace_and_switch_between_workspaces(signed_in: SignedIn) -> None:
    world.seed_catalog()
    alice = world.person("alice@example.com", "Alice")
    page = signed_in(alice.user, alice.workspace)

    page.goto("/workspaces/new/")
    page.get_by_label("Name", exact=True).fill("Acme Studio")
    page.get_by_role("button", name="Create workspace").click()

    expect(page).to_have_url(re.compile(r"/dashboard/$"))
    expect(page.get_by_text("Workspace “Acme Studio” created.")).to_be_visible()
    page.goto("/workspaces/current/settings/")
    expect(page.get_by_label("Name", exact=True)).to_have_value("Acme Studio")

    # Back to the personal workspace, then to the new one, from the list of workspaces.
    for name in ("Alice's workspace", "Acme Studio"):
        page.goto("/workspaces/")
        page.get_by_role("row").filter(has_text=name).get_by_role("button", name="Switch").click()
        expect(page).to_have_url(re.compile(r"/dashboard/$"))
        page.goto("/workspaces/")
        expect(page.get_by_role("row").filter(has_text=name)).to_contain_text("current")
        page.goto("/workspaces/current/settings/")
        expect(page.get_by_label("Name", exact=True)).to_have_value(name)


def test_invite_a_teammate_who_accepts_in_their_own_browser(signed_in: SignedIn) -> None:
    world.seed_catalog()
    alice = world.person("alice@example.com", "Alice")
    acme = world.team(alice.user, "Acme Studio")
    owner = signed_in(alice.user, acme)

    owner.goto("/workspaces/current/members/")
    owner.get_by_label("Email", exact=True).fill("bob@example.com")
    owner.get_by_role("button", name="Send invitation").click()
    expect(owner.get_by_text("Invitation sent to bob@example.com.")).to_be_visible()
    expect(owner.get_by_test_id("invitations")).to_contain_text("bob@example.com")

    bob = world.person("bob@example.com", "Bob")
    teammate = signed_in(bob.user, bob.workspace)
    teammate.goto(link_in_last_mail("bob@example.com", "/workspaces/invitations/"))
    expect(teammate.get_by_role("heading", name="Join “Acme Studio”")).to_be_visible()
    teammate.get_by_role("button", name="Accept invitation").click()

    expect(teammate).to_have_url(re.compile(r"/dashboard/$"))
    expect(teammate.get_by_text("Welcome to “Acme Studio”.")).to_be_visible()
    teammate.goto("/workspaces/current/members/")
    expect(teammate.get_by_role("heading", level=1)).to_have_text("Members of Acme Studio")

    owner.reload()
    expect(owner.get_by_test_id("members")).to_contain_text("bob@example.com")
    expect(owner.get_by_text("No pending invitations.")).to_be_visible()
