"""Test settings: the same services as configured by the environment, faster hashing."""

from __future__ import annotations

import os

from .base import *
from .base import CACHES, CHANNEL_LAYERS, DATABASES, env

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Tests run tasks inline even when a Redis broker is configured; the broker itself is still
# checked by /readyz tests.
CELERY_TASK_ALWAYS_EAGER = True
MEDIA_ROOT = BASE_DIR / ".test-media"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Each test run, and each pytest-xdist worker of a run, gets its own cache and channel-layer
# namespace so parallel runs on one Redis never collide (the workers' databases are already
# apart: pytest-django suffixes them with the worker id).
_NAMESPACE = env.str("CACHE_KEY_PREFIX", default="aikeedo-test") + os.environ.get("PYTEST_XDIST_WORKER", "")
CACHES["default"]["KEY_PREFIX"] = _NAMESPACE
if CHANNEL_LAYERS["default"]["BACKEND"] == "channels_redis.core.RedisChannelLayer":
    CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = _NAMESPACE
# No pool in tests: the test database is created, flushed and dropped around the suite, and a
# pool would keep connections to it open.
DATABASES["default"]["CONN_MAX_AGE"] = 0
DATABASES["default"].get("OPTIONS", {}).pop("pool", None)
ACCOUNT_RATE_LIMITS = False  # type: ignore[assignment]
# dj-stripe's migrations take ~90 s to apply (hundreds of operations over its models); the test
# database is built from one migration generated from its current models instead
# (`tests/djstripe_migrations`, regenerate with `DJANGO_SETTINGS_MODULE=aikeedo.settings.test
# manage.py makemigrations djstripe` after upgrading dj-stripe). Deployments use dj-stripe's own.
MIGRATION_MODULES = {"djstripe": "tests.djstripe_migrations"}
# dj-stripe's sync fetches from api.stripe.com (no network here); tests that cover it turn it on
# against the local fake.
BILLING_MIRROR_DJSTRIPE = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # The same backend with a cheaper flush after transactional tests (see tests/pg_backend).
    DATABASES["default"]["ENGINE"] = "tests.pg_backend"
