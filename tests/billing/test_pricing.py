"""The public pricing page: plans for both billing periods, credit packs, and what each visitor
can do there (sign up, subscribe, switch, ask the owner, or contact support without Stripe)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from apps.billing.models import BillingAccount, Fulfilment, Plan, PlanSource, SubscriptionStatus

pytestmark = pytest.mark.django_db

URL = "/billing/pricing/"


def request_keys(html: str) -> list[str]:
    return re.findall(r'name="request_key" value="([0-9a-f-]{36})"', html)


def test_pricing_url_and_nav_links(client, alpha, client_for, catalogue, fake_stripe) -> None:
    assert reverse("billing:pricing") == URL
    anonymous = client.get(URL).content.decode()
    assert f'href="{URL}" class="public-link">Pricing</a>' in anonymous
    signed_in = client_for(alpha.member, alpha.workspace).get(URL).content.decode()
    # Signed in, the sidebar links to the workspace's billing page (pricing is one click from it).
    assert re.search(rf'<a href="{reverse("billing:overview")}"[^>]*>.*?Billing</a>', signed_in, re.S)
    assert ">Pricing</a>" not in signed_in


def test_anonymous_visitor_sees_plans_packs_and_sign_up(client, catalogue, fake_stripe) -> None:
    response = client.get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    for code in ("free", "starter", "professional", "enterprise"):
        assert f'data-plan="{code}"' in html
    for code in ("small", "medium", "large"):
        assert f'data-pack="{code}"' in html
    assert "$19.00" in html
    assert "1,000" in html
    assert "Custom voice cloning" in html  # a feature bullet
    assert "7-day free trial" in html
    assert "14-day free trial" in html
    assert "+ <strong>100 bonus</strong>" in html
    assert "Sign up to subscribe" in html
    assert "Sign up to buy" in html
    assert 'data-testid="subscribe"' not in html
    assert 'data-testid="current-plan"' not in html
    assert 'data-testid="payments-off"' not in html
    assert fake_stripe.requests == []


def test_yearly_toggle_shows_the_year_price_and_monthly_equivalent(client, catalogue, fake_stripe) -> None:
    html = client.get(URL, {"interval": "year"}).content.decode()
    assert "<strong>$190.00</strong> per year" in html
    assert "$15.83 per month, billed yearly" in html  # 19000 / 12, rounded down to the cent
    assert "save 17%" in html  # 190 instead of 12 * 19
    monthly = client.get(URL).content.decode()
    assert "<strong>$19.00</strong> per month" in monthly
    assert "per year" not in monthly


def test_plan_without_yearly_price_is_monthly_only(client, catalogue, fake_stripe) -> None:
    Plan.objects.filter(code="starter").update(price_yearly_cents=0)
    html = client.get(URL, {"interval": "year"}).content.decode()
    starter = html.split('data-plan="starter"')[1].split("</article>")[0]
    assert "Billed monthly only." in starter


def test_hidden_and_inactive_plans_are_not_listed(client, catalogue, fake_stripe) -> None:
    Plan.objects.filter(code="enterprise").update(is_public=False)
    Plan.objects.filter(code="professional").update(is_active=False)
    html = client.get(URL).content.decode()
    assert 'data-plan="enterprise"' not in html
    assert 'data-plan="professional"' not in html


def test_without_stripe_the_page_renders_with_a_contact_note(client, client_for, alpha, catalogue, no_stripe) -> None:
    response = client.get(URL)
    assert response.status_code == 200
    assert "Online payments are not configured" in response.content.decode()
    owner = client_for(alpha.owner, alpha.workspace).get(URL)
    html = owner.content.decode()
    assert owner.status_code == 200
    assert 'data-testid="payments-off"' in html
    assert 'data-testid="contact-support"' in html
    assert 'data-testid="subscribe"' not in html
    assert 'data-testid="buy-pack"' not in html


def test_owner_gets_subscribe_and_buy_forms_each_with_its_own_key(client_for, alpha, catalogue, fake_stripe) -> None:
    html = client_for(alpha.owner, alpha.workspace).get(URL).content.decode()
    assert html.count('data-testid="subscribe"') == 3  # starter, professional, enterprise (free needs none)
    assert html.count('data-testid="buy-pack"') == 3
    keys = request_keys(html)
    assert len(keys) == 6
    assert len(set(keys)) == 6
    assert "Start 7-day trial" in html
    free = html.split('data-plan="free"')[1].split("</article>")[0]
    assert 'data-testid="current-plan"' in free  # the default plan is theirs
    assert "Your workspace is on this plan." in free


@pytest.mark.parametrize("role", ["admin", "member"])
def test_non_owners_are_told_to_ask_the_owner(role, client_for, alpha, catalogue, fake_stripe) -> None:
    html = client_for(getattr(alpha, role), alpha.workspace).get(URL).content.decode()
    assert 'data-testid="ask-owner"' in html
    assert "Ask the workspace owner" in html
    assert 'data-testid="subscribe"' not in html
    assert 'data-testid="buy-pack"' not in html


def test_subscribed_owner_gets_switch_links_and_the_current_plan_marked(
    client_for, alpha, catalogue, fake_stripe
) -> None:
    BillingAccount.objects.create(
        workspace=alpha.workspace,
        plan=catalogue["plans"]["starter"],
        plan_source=PlanSource.STRIPE,
        subscription_id="sub_x",
        subscription_status=SubscriptionStatus.ACTIVE,
        interval=Plan.Interval.MONTH,
    )
    html = client_for(alpha.owner, alpha.workspace).get(URL).content.decode()
    starter = html.split('data-plan="starter"')[1].split("</article>")[0]
    assert 'data-testid="current-plan"' in starter
    assert "(monthly)" in starter
    assert 'data-testid="change"' not in starter
    assert f"{reverse('billing:change')}?plan=professional&amp;interval=month" in html
    assert 'data-testid="subscribe"' not in html
    yearly = client_for(alpha.owner, alpha.workspace).get(URL, {"interval": "year"}).content.decode()
    assert "?plan=starter&amp;interval=year" in yearly  # same plan, other period: a switch


def test_trial_is_not_advertised_to_a_workspace_that_had_one(client_for, alpha, catalogue, fake_stripe) -> None:
    Fulfilment.objects.create(workspace=alpha.workspace, key="trial:sub_old", kind=Fulfilment.Kind.TRIAL)
    html = client_for(alpha.owner, alpha.workspace).get(URL).content.decode()
    assert "free trial" not in html
    assert "Start 7-day trial" not in html


def test_trial_without_card_is_advertised_as_such(client, catalogue, fake_stripe) -> None:
    Plan.objects.filter(code="professional").update(trial_requires_card=False)
    html = client.get(URL).content.decode()
    professional = html.split('data-plan="professional"')[1].split("</article>")[0]
    assert "— no card needed" in professional
    starter = html.split('data-plan="starter"')[1].split("</article>")[0]
    assert "no card needed" not in starter


def _text(html: str) -> str:
    """What a person reads: the markup's text with whitespace collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


@pytest.mark.parametrize("interval", ["month", "year"])
def test_the_free_plan_is_not_called_free_twice(client, catalogue, fake_stripe, interval) -> None:
    html = client.get(URL, {"interval": interval}).content.decode()

    card = html.split('data-plan="free"')[1].split("</article>")[0]
    text = _text(card)
    assert "Free Free" not in text
    assert text.startswith("> Free ")  # the plan's name, once, then its price
    assert "$0.00 per month" in text
    assert "No card needed." in text
