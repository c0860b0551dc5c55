from __future__ import annotations

import time

import pytest
from django.core.cache import cache

from apps.core import health


@pytest.mark.django_db
def test_healthz_answers_ok_without_touching_services(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_reports_every_check_ok(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"] == {"database": "ok", "cache": "ok", "broker": "ok"}


@pytest.mark.django_db
def test_readyz_names_a_dead_cache_with_503(client, monkeypatch):
    class DeadCache:
        def set(self, *args, **kwargs):
            raise ConnectionError("Connection refused")

    monkeypatch.setattr(health, "cache", DeadCache())
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["cache"] == "fail"
    assert body["checks"]["database"] == "ok"
    assert "Connection refused" in body["errors"]["cache"]


@pytest.mark.django_db
def test_readyz_reports_unreachable_cache_server_as_503(client, settings):
    # A real client pointed at a port where nothing listens, not a stub.
    from django.core.cache.backends.redis import RedisCache

    dead = RedisCache("redis://127.0.0.1:1/0", {"OPTIONS": {"socket_connect_timeout": 0.5}})
    original = health.cache
    health.cache = dead
    try:
        response = client.get("/readyz")
    finally:
        health.cache = original
    assert response.status_code == 503
    assert response.json()["checks"]["cache"] == "fail"


@pytest.mark.django_db
def test_readyz_reports_unreachable_broker(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"] == "fail"


def test_request_id_is_generated_and_echoed(client):
    response = client.get("/healthz")
    assert len(response["X-Request-ID"]) == 32
    response = client.get("/healthz", HTTP_X_REQUEST_ID="client-supplied-id-123")
    assert response["X-Request-ID"] == "client-supplied-id-123"
    response = client.get("/healthz", HTTP_X_REQUEST_ID="bad id with spaces")
    assert response["X-Request-ID"] != "bad id with spaces"


def test_cache_is_usable():
    cache.set("k", "v")
    assert cache.get("k") == "v"


@pytest.mark.django_db
def test_readyz_names_the_failed_broker_check_in_the_body(client, settings):
    # A real Redis client pointed at a port where nothing listens.
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"

    started = time.monotonic()
    response = client.get("/readyz")
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "fail"
    assert body["checks"] == {"database": "ok", "cache": "ok", "broker": "fail"}
    assert set(body["errors"]) == {"broker"}
    assert "127.0.0.1:1" in body["errors"]["broker"]
    # A refused connection is the answer; no back-off sleep before the probe hears it.
    assert elapsed < 1.5


def test_readyz_only_answers_get(client):
    assert client.post("/readyz").status_code == 405


@pytest.mark.django_db
def test_readyz_is_never_cached(client):
    assert "no-cache" in client.get("/readyz")["Cache-Control"]
