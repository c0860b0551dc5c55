"""Request ids, client IPs and the log context bound by the request middleware."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from django.test import RequestFactory

from apps.audit.models import AuditEvent
from apps.core import context
from apps.core.logging import build_formatter
from apps.core.middleware import client_ip, impersonator_from_session


@pytest.fixture
def json_log() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Everything logged under `django.request` while the test runs, as formatted by the
    project's JSON formatter (the one production uses)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(build_formatter(json=True))
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        logger.removeHandler(handler)


@pytest.mark.django_db
def test_log_lines_emitted_during_a_request_carry_its_request_id(client, json_log):
    response = client.get("/no-such-page/", HTTP_X_REQUEST_ID="log-trace-0001")

    assert response.status_code == 404
    lines = [line for line in json_log() if "Not Found" in line["event"]]
    assert len(lines) == 1
    assert lines[0]["request_id"] == "log-trace-0001"
    assert lines[0]["ip"] == "127.0.0.1"
    assert lines[0]["level"] == "warning"


@pytest.mark.django_db
def test_log_lines_carry_the_signed_in_user(client_for, alpha, json_log):
    client_for(alpha.member).get("/no-such-page/")

    (line,) = [line for line in json_log() if "Not Found" in line["event"]]
    assert line["user_id"] == alpha.member.pk


@pytest.mark.django_db
def test_each_request_starts_with_a_fresh_log_context(client_for, client, alpha, json_log):
    client_for(alpha.member).get("/no-such-page/", HTTP_X_REQUEST_ID="first-request-01")
    client.get("/no-such-page/", HTTP_X_REQUEST_ID="second-request-02")

    first, second = [line for line in json_log() if "Not Found" in line["event"]]
    assert first["request_id"] == "first-request-01"
    assert second["request_id"] == "second-request-02"
    assert "user_id" not in second


def test_structlog_events_are_rendered_with_bound_context():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(build_formatter(json=True))
    logger = logging.getLogger("tests.structlog")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    structlog.contextvars.clear_contextvars()
    try:
        structlog.contextvars.bind_contextvars(request_id="bound-id-123")
        structlog.get_logger("tests.structlog").info("credits.reserved", amount=5)
    finally:
        structlog.contextvars.clear_contextvars()
        logger.removeHandler(handler)

    line = json.loads(stream.getvalue())
    assert line == {**line, "event": "credits.reserved", "amount": 5, "request_id": "bound-id-123"}


def test_request_id_is_generated_when_missing_or_malformed(client):
    generated = client.get("/healthz")["X-Request-ID"]
    assert len(generated) == 32
    assert client.get("/healthz")["X-Request-ID"] != generated
    assert client.get("/healthz", HTTP_X_REQUEST_ID="short")["X-Request-ID"] != "short"
    too_long = "a" * 129
    assert client.get("/healthz", HTTP_X_REQUEST_ID=too_long)["X-Request-ID"] != too_long


def test_audit_context_is_empty_again_after_a_request(client):
    client.get("/healthz", HTTP_X_REQUEST_ID="context-reset-01", HTTP_USER_AGENT="probe")

    assert context.current() == context.RequestContext()


@pytest.mark.parametrize(
    ("remote_addr", "expected"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8::1", "2001:db8::1"),
        ("", None),
        ("unix:/run/app.sock", None),
    ],
)
def test_client_ip_keeps_only_real_addresses(remote_addr, expected):
    request = RequestFactory().get("/", REMOTE_ADDR=remote_addr)

    assert client_ip(request) == expected


def test_client_ip_ignores_forwarded_for_headers():
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.7")

    assert client_ip(request) == "10.0.0.2"


@pytest.mark.django_db
def test_request_from_a_non_ip_peer_is_still_audited(alpha):
    # allauth refuses such requests for its own views; the audit row must not fail either.
    from django.http import HttpRequest, HttpResponse

    from apps.audit.services import audit_record
    from apps.core.middleware import RequestContextMiddleware

    def view(request: HttpRequest) -> HttpResponse:
        audit_record(actor=alpha.owner, action="workspace.rename", workspace=alpha.workspace)
        return HttpResponse()

    request = RequestFactory().get("/", REMOTE_ADDR="unix:/run/app.sock", HTTP_X_REQUEST_ID="unix-peer-0001")
    RequestContextMiddleware(view)(request)

    event = AuditEvent.objects.get(action="workspace.rename")
    assert event.ip is None
    assert event.request_id == "unix-peer-0001"


@pytest.mark.parametrize(
    ("history", "expected"),
    [(["7"], 7), (["7", "9"], 7), ([], None), (None, None), ("7", None), (["x"], None)],
)
def test_impersonator_from_session(history, expected):
    session = {} if history is None else {"hijack_history": history}

    assert impersonator_from_session(session) == expected
