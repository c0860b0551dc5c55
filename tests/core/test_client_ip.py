"""The client address behind reverse proxies: X-Forwarded-For counts only when the direct peer is
a trusted proxy (TRUSTED_PROXIES), and then the right-most entry that is not a trusted proxy is
the client. Every consumer of the address (audit log, allauth, sessions) gets the same answer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from allauth.account.adapter import get_adapter
from allauth.usersessions.models import UserSession
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.test import Client, RequestFactory
from pytest_django import Settings

from apps.audit.models import AuditEvent
from apps.core.middleware import client_ip, forwarded_client_ip, trusted_proxy_networks
from tests.factories import PASSWORD, UserFactory

PROXY = "10.0.0.2"
CLIENT = "198.51.100.7"
FORGED = "6.6.6.6"


def ip_of(remote_addr: str, forwarded_for: str | None = None) -> str | None:
    headers = {} if forwarded_for is None else {"X-Forwarded-For": forwarded_for}
    return client_ip(RequestFactory().get("/", REMOTE_ADDR=remote_addr, headers=headers))


@pytest.fixture
def behind_proxy(settings: Settings) -> None:
    settings.TRUSTED_PROXIES = ["10.0.0.0/8", "fd00::/8"]


def test_forwarded_for_is_ignored_without_trusted_proxies(settings: Settings) -> None:
    settings.TRUSTED_PROXIES = []

    assert ip_of(CLIENT, FORGED) == CLIENT
    assert ip_of(PROXY, f"{FORGED}, {CLIENT}") == PROXY


def test_forwarded_for_from_an_untrusted_peer_is_ignored(behind_proxy: None) -> None:
    # A client connecting directly (not through the proxy) cannot pose as someone else.
    assert ip_of(CLIENT, FORGED) == CLIENT
    assert ip_of(CLIENT, PROXY) == CLIENT


def test_behind_a_trusted_proxy_the_right_most_untrusted_entry_is_the_client(behind_proxy: None) -> None:
    # The proxy appends the address it saw; whatever the client sent stays on the left.
    assert ip_of(PROXY, CLIENT) == CLIENT
    assert ip_of(PROXY, f"{FORGED}, {CLIENT}") == CLIENT
    assert ip_of(PROXY, f"{FORGED},{CLIENT}") == CLIENT


def test_a_chain_of_trusted_proxies_is_walked_from_the_right(settings: Settings) -> None:
    settings.TRUSTED_PROXIES = ["10.0.0.0/8", "172.16.0.3"]

    # client -> CDN edge (172.16.0.3) -> load balancer (10.1.2.3) -> ingress (10.0.0.2) -> app
    assert ip_of(PROXY, f"{FORGED}, {CLIENT}, 172.16.0.3, 10.1.2.3") == CLIENT
    # Forged "trusted" entries left of the client change nothing: the walk stops at the client.
    assert ip_of(PROXY, f"10.9.9.9, {FORGED}, {CLIENT}, 10.1.2.3") == CLIENT


def test_when_every_hop_is_trusted_the_left_most_one_is_the_client(behind_proxy: None) -> None:
    assert ip_of(PROXY, "10.4.4.4, 10.3.3.3") == "10.4.4.4"


@pytest.mark.parametrize(
    ("forwarded_for", "expected"),
    [
        ("", PROXY),
        (" , ", PROXY),
        ("unknown", PROXY),
        ("not-an-address", PROXY),
        (f"{CLIENT}, garbage", PROXY),  # the proxy passed on no address: stop at the proxy
        (f"garbage, {CLIENT}", CLIENT),  # left of the client: never read
        (f"{CLIENT}, 10.1.1.1, 999.1.1.1", PROXY),
        ("<script>, ' OR 1=1 --", PROXY),
        (f"{CLIENT}:51234", CLIENT),  # some proxies add the client's port
    ],
)
def test_garbage_in_the_header_never_becomes_the_address(
    behind_proxy: None, forwarded_for: str, expected: str | None
) -> None:
    assert ip_of(PROXY, forwarded_for) == expected


@pytest.mark.parametrize(
    ("remote_addr", "forwarded_for", "expected"),
    [
        ("fd00::1", "2001:db8::1", "2001:db8::1"),
        ("fd00::1", f"{FORGED}, 2001:db8::1", "2001:db8::1"),
        ("fd00::1", "[2001:db8::2]:443", "2001:db8::2"),
        ("fd00::1", f"2001:db8::3, {CLIENT}, fd00::7", CLIENT),
        (PROXY, "2001:DB8:0:0::9", "2001:db8::9"),
        ("2001:db8::5", FORGED, "2001:db8::5"),  # untrusted IPv6 peer
        ("::ffff:10.0.0.2", CLIENT, CLIENT),  # IPv4 proxy seen on a dual-stack socket
        ("::ffff:198.51.100.9", FORGED, "198.51.100.9"),
    ],
)
def test_ipv6_peers_and_entries(behind_proxy: None, remote_addr: str, forwarded_for: str, expected: str | None) -> None:
    assert ip_of(remote_addr, forwarded_for) == expected


def test_a_non_ip_peer_still_gives_none(behind_proxy: None) -> None:
    assert ip_of("unix:/run/app.sock", CLIENT) is None
    assert forwarded_client_ip(None, CLIENT) is None


def test_a_malformed_trusted_proxy_fails_loudly() -> None:
    with pytest.raises(ImproperlyConfigured, match="TRUSTED_PROXIES"):
        trusted_proxy_networks(("10.0.0.0/8", "10.0.0.300"))


def test_settings_refuse_to_load_with_a_malformed_trusted_proxy() -> None:
    env = {**os.environ, "TRUSTED_PROXIES": "10.0.0.0/8,10.0.0.300"}
    result = subprocess.run(
        [sys.executable, "-c", "import aikeedo.settings.base"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode != 0
    assert "TRUSTED_PROXIES: '10.0.0.300' is not an IP address or network." in result.stderr


def test_allauth_reads_the_same_address(behind_proxy: None) -> None:
    adapter = get_adapter()

    request = RequestFactory().get("/", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=f"{FORGED}, {CLIENT}")
    assert adapter.get_client_ip(request) == CLIENT
    spoofed = RequestFactory().get("/", REMOTE_ADDR=CLIENT, HTTP_X_FORWARDED_FOR=FORGED)
    assert adapter.get_client_ip(spoofed) == CLIENT
    with pytest.raises(PermissionDenied):
        adapter.get_client_ip(RequestFactory().get("/", REMOTE_ADDR="unix:/run/app.sock"))


@pytest.mark.django_db
def test_audit_row_and_session_carry_the_real_address_behind_the_proxy(behind_proxy: None) -> None:
    user = UserFactory.create()
    client = Client(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=f"{FORGED}, {CLIENT}")

    response = client.post("/accounts/login/", {"login": user.email, "password": PASSWORD})

    assert response.status_code == 302
    assert AuditEvent.objects.get(action="user.login", actor=user).ip == CLIENT
    assert UserSession.objects.get(user=user).ip == CLIENT


@pytest.mark.django_db
def test_audit_row_and_session_ignore_a_forged_header_without_trusted_proxies(settings: Settings) -> None:
    settings.TRUSTED_PROXIES = []
    user = UserFactory.create()
    client = Client(REMOTE_ADDR=CLIENT, HTTP_X_FORWARDED_FOR=FORGED)

    client.post("/accounts/login/", {"login": user.email, "password": PASSWORD})

    assert AuditEvent.objects.get(action="user.login", actor=user).ip == CLIENT
    assert UserSession.objects.get(user=user).ip == CLIENT
