"""Production settings: every secret from the environment, secure cookies and HTTPS.

Starting without DJANGO_SECRET_KEY or DJANGO_ALLOWED_HOSTS fails loudly (ImproperlyConfigured).
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from .base import *
from .base import SITE_URL, env

DEBUG = False
SECRET_KEY = env.str("DJANGO_SECRET_KEY")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("Set DJANGO_ALLOWED_HOSTS to the host names this site serves.")
if len(SECRET_KEY) < 50:
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be at least 50 characters.")
# Emailed links never follow a request's Host here: SITE_URL, else the first host served, on HTTPS.
if not SITE_URL:
    _site_host = next((host for host in ALLOWED_HOSTS if host and not host.startswith((".", "*"))), "")
    if not _site_host:
        raise ImproperlyConfigured("Set SITE_URL (e.g. https://app.example.com): the base URL of links in emails.")
    SITE_URL = f"https://{_site_host}"

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 30)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https"
LOG_FORMAT = env.str("LOG_FORMAT", default="json")
LOGGING["formatters"]["structured"]["json"] = LOG_FORMAT == "json"  # type: ignore[index]
STORAGES["staticfiles"] = {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
