"""Settings shared by every environment.

The environment chooses real services; every default is embedded so that a fresh clone
runs with SQLite, local-memory cache, in-memory channel layer, eager Celery, console email
and local media. See `.env.example` for every variable.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
# litellm would fetch its model cost map from the internet on import; use the bundled copy.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# A local `.env` is optional and never committed; real deployments use the environment.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=False)
# Development-only fallback; production.py refuses to start without DJANGO_SECRET_KEY.
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="insecure-development-key-do-not-use-in-production")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
# Base URL of links in emails (invitations, low-balance alerts, billing). Empty: the address of
# the request that caused the email (`make run` on any port), see apps.core.sites.
SITE_URL = env.str("SITE_URL", default="").strip().rstrip("/")
if SITE_URL and not SITE_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(f"SITE_URL must start with http:// or https://, not {SITE_URL!r}.")
# Reverse proxies whose X-Forwarded-For is believed: addresses or CIDR networks, e.g.
# 10.0.0.0/8,fd00::/8. Unset: the direct peer is the client (apps.core.middleware.client_ip).
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
for _proxy in TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy.strip(), strict=False)
    except ValueError as _error:
        raise ImproperlyConfigured(f"TRUSTED_PROXIES: {_proxy!r} is not an IP address or network.") from _error

# ---------------------------------------------------------------------------- apps
INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "django.contrib.humanize",
    "channels",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "constance",
    "django_htmx",
    "django_celery_beat",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.google",
    "allauth.socialaccount.providers.github",
    "allauth.usersessions",
    "apps.core",
    "apps.audit",
    "apps.accounts",
    "apps.workspaces",
    "apps.credits",
    "apps.generation",
    "apps.chat",
    "apps.apikeys",
    "apps.ratelimits",
    "apps.api",
    "apps.media",
    "apps.documents",
    "apps.presets",
    "djstripe",
    "apps.billing",
    "apps.dashboard",
]

MIDDLEWARE = [
    "apps.core.middleware.RequestContextMiddleware",
    # Errors under /v1/ and /api/ as JSON in each API's shape (bodies over the limit: 413).
    "apps.api.middleware.ApiErrorMiddleware",
    "apps.core.middleware.RefusedInputMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "apps.core.sites.SiteURLMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "allauth.usersessions.middleware.UserSessionsMiddleware",
    "apps.core.middleware.RequestUserContextMiddleware",
    "apps.accounts.middleware.UserPreferencesMiddleware",
    "apps.workspaces.middleware.CurrentWorkspaceMiddleware",
    # A domain error no view caught, on a page: its status and message (4xx), not a 500.
    "apps.core.middleware.DomainErrorMiddleware",
]

ROOT_URLCONF = "aikeedo.urls"
WSGI_APPLICATION = "aikeedo.wsgi.application"
ASGI_APPLICATION = "aikeedo.asgi.application"
SITE_ID = 1

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.debug",
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.core.context_processors.branding",
                "apps.workspaces.context_processors.workspaces",
                "apps.credits.context_processors.credits",
                "apps.dashboard.context_processors.sidebar",
            ],
        },
    },
]

# ---------------------------------------------------------------------------- database
# SQLite file by default; PostgreSQL (or any dj-database-url) through DATABASE_URL.
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False  # a provider call must never run in a transaction
# Under ASGI, Django's persistent connections are not reused (each request runs its sync parts
# in a thread of its own), so connections close after each request or database step and
# PostgreSQL takes them from a pool (psycopg_pool) instead of opening one each time.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env.bool("DATABASE_POOL", default=True):
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DATABASE_POOL_MIN_SIZE", default=2),
        "max_size": env.int("DATABASE_POOL_MAX_SIZE", default=20),
        "timeout": env.int("DATABASE_POOL_TIMEOUT", default=10),
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps the connections
# Threads that run the async views' and WebSocket consumers' database steps in each process
# (each with at most one connection at a time). 0: Django's one shared sync thread — the
# default on SQLite, which serialises writers anyway (and whose in-memory test database
# refuses concurrent connections with "table is locked").
DB_STEP_THREADS = env.int(
    "DB_STEP_THREADS", default=0 if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3" else 8
)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Wait for a concurrent writer instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
    # Writers take the lock when their transaction starts: a reader upgrading to a writer while
    # another writes would fail at once with "database is locked" instead of waiting.
    DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# ---------------------------------------------------------------------------- redis-backed layers
REDIS_URL = env.str("REDIS_URL", default="")

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="aikeedo"),
        }
    }
    CHANNEL_LAYERS: dict[str, dict[str, Any]] = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": env.str("CACHE_KEY_PREFIX", default="aikeedo")},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Long-lived connections (chat and job sockets, streamed API answers) re-check at most this often
# while they stream that their user or key may still use the workspace; suspension, removal and
# deletion also end open sockets at once through the channel layer.
STREAM_ACCESS_RECHECK_SECONDS = env.float("STREAM_ACCESS_RECHECK_SECONDS", default=5.0)
# A chat answer keeps generating when its tab closes; one nobody stops ends (settled for what was
# generated) after this long. Keep it below the turn lock's 600 s (apps.chat.services).
CHAT_MAX_ANSWER_SECONDS = env.float("CHAT_MAX_ANSWER_SECONDS", default=480.0)

SESSION_ENGINE = "django.contrib.sessions.backends.db"

# ---------------------------------------------------------------------------- celery
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=REDIS_URL or "cache+memory://")
# Without a broker, tasks run inline so a fresh clone needs no worker.
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 15 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 14 * 60
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = {
    "credits-sweep-stale-reservations": {"task": "apps.credits.tasks.sweep_stale_reservations", "schedule": 60.0},
    "credits-expire-grants": {"task": "apps.credits.tasks.expire_grants", "schedule": 300.0},
    "generation-sweep-interrupted": {"task": "apps.generation.tasks.sweep_interrupted", "schedule": 60.0},
    "chat-sweep-interrupted": {"task": "apps.chat.tasks.sweep_interrupted", "schedule": 60.0},
    "chat-purge-unsent-attachments": {"task": "apps.chat.tasks.purge_unsent_attachments", "schedule": 3600.0},
    "documents-purge-trash": {"task": "apps.documents.tasks.purge_trash", "schedule": 3600.0},
    "media-sweep-stale-jobs": {"task": "apps.media.tasks.sweep_stale_jobs", "schedule": 60.0},
    "media-cleanup-files": {"task": "apps.media.tasks.cleanup_media", "schedule": 3600.0},
    "billing-retry-events": {"task": "apps.billing.tasks.retry_failed_events", "schedule": 60.0},
    "billing-daily": {"task": "apps.billing.tasks.billing_daily", "schedule": 3600.0},
}

# ---------------------------------------------------------------------------- auth
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    # Minimum length and character classes come from the admin (Config > Security).
    {"NAME": "apps.accounts.validators.ConfigurablePasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "home"

ACCOUNT_ADAPTER = "apps.accounts.adapter.AccountAdapter"
SOCIALACCOUNT_ADAPTER = "apps.accounts.adapter.SocialAccountAdapter"
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_CHANGE_EMAIL = True
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_SESSION_REMEMBER = None
ACCOUNT_EMAIL_SUBJECT_PREFIX = ""
ACCOUNT_DEFAULT_HTTP_PROTOCOL = env.str("ACCOUNT_DEFAULT_HTTP_PROTOCOL", default="http")
ACCOUNT_FORMS = {"login": "apps.accounts.forms.LoginForm"}
# Wrong passwords count per address and per (account, address) -- the adapter adds the address to
# allauth's key -- so an attacker's failures never block the owner signing in from elsewhere. The
# per-account ceiling is far above what one address can reach (5 per 5 minutes); a guesser spread
# over many addresses hits it, and the owner then signs in with an emailed code.
ACCOUNT_RATE_LIMITS = {
    "login": "30/m/ip",
    "login_failed": "10/m/ip,5/5m/key",
    "login_failed_account": "200/h/key",
    "signup": "20/m/ip",
    "reset_password": "20/m/ip,5/m/key",
    "confirm_email": "1/3m/key",
}
# "Email me a sign-in code": the way in when password sign-in is throttled or forgotten.
ACCOUNT_LOGIN_BY_CODE_ENABLED = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = True
SOCIALACCOUNT_LOGIN_ON_GET = False
USERSESSIONS_TRACK_ACTIVITY = True

# ---------------------------------------------------------------------------- i18n
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("de", "Deutsch"), ("fr", "Français"), ("es", "Español")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# ---------------------------------------------------------------------------- files
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(BASE_DIR / "media")))

AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="")
if AWS_STORAGE_BUCKET_NAME:
    AWS_ACCESS_KEY_ID = env.str("AWS_ACCESS_KEY_ID", default=None)
    AWS_SECRET_ACCESS_KEY = env.str("AWS_SECRET_ACCESS_KEY", default=None)
    AWS_S3_REGION_NAME = env.str("AWS_S3_REGION_NAME", default=None)
    AWS_S3_ENDPOINT_URL = env.str("AWS_S3_ENDPOINT_URL", default=None)
    AWS_DEFAULT_ACL = None
    AWS_QUERYSTRING_AUTH = True  # private by default: downloads are presigned
    AWS_QUERYSTRING_EXPIRE = env.int("AWS_QUERYSTRING_EXPIRE", default=300)
    AWS_S3_FILE_OVERWRITE = False
    _default_storage = {"BACKEND": "storages.backends.s3.S3Storage"}
else:
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": _default_storage,
    "staticfiles": {
        "BACKEND": env.str("STATICFILES_BACKEND", default="django.contrib.staticfiles.storage.StaticFilesStorage")
    },
}
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# ---------------------------------------------------------------------------- email
EMAIL_URL = env.str("EMAIL_URL", default="")
if EMAIL_URL:
    vars().update(env.email_url("EMAIL_URL"))
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Aikeedo <no-reply@aikeedo.local>")
SERVER_EMAIL = env.str("SERVER_EMAIL", default=DEFAULT_FROM_EMAIL)

# ---------------------------------------------------------------------------- security
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=60 * 60 * 24 * 14)
CSRF_COOKIE_HTTPONLY = False  # HTMX reads the token from the page, not the cookie
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# Key for provider credentials stored in the admin (derived from SECRET_KEY when empty).
FIELD_ENCRYPTION_KEY = env.str("FIELD_ENCRYPTION_KEY", default="")

# ---------------------------------------------------------------------------- payments (Stripe)
# Without a secret key the site runs with payments off: pricing is shown, purchases are refused
# with an explanation and staff assign plans and credits from the admin.
STRIPE_LIVE_MODE = env.bool("STRIPE_LIVE_MODE", default=False)
STRIPE_TEST_SECRET_KEY = env.str("STRIPE_TEST_SECRET_KEY", default="")
STRIPE_LIVE_SECRET_KEY = env.str("STRIPE_LIVE_SECRET_KEY", default="")
STRIPE_TEST_PUBLIC_KEY = env.str("STRIPE_TEST_PUBLIC_KEY", default="")
STRIPE_LIVE_PUBLIC_KEY = env.str("STRIPE_LIVE_PUBLIC_KEY", default="")
# An S3-style override for Stripe-compatible servers (a local fake in tests); empty: Stripe.
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="")
# Signing secret of the webhook endpoint; `billing webhook` registers it with dj-stripe.
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
# After fulfilling an event, let dj-stripe sync its copy of the Stripe objects (invoices for the
# billing page, its admin). Best effort: it re-fetches from Stripe; fulfilment never waits on it.
BILLING_MIRROR_DJSTRIPE = env.bool("BILLING_MIRROR_DJSTRIPE", default=True)
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
DJSTRIPE_WEBHOOK_VALIDATION = "verify_signature"
# Customers belong to workspaces, not users: dj-stripe's subscriber link is not used.
DJSTRIPE_SUBSCRIBER_CUSTOMER_KEY = ""

# ---------------------------------------------------------------------------- DRF
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Every error of the platform API in one JSON shape (apps.api.errors).
    "EXCEPTION_HANDLER": "apps.api.platform.platform_exception_handler",
    # DRF's parsers, with JSON nesting capped before parsing (apps.api.parsers).
    "DEFAULT_PARSER_CLASSES": [
        "apps.api.parsers.DepthLimitedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Aikeedo API",
    "DESCRIPTION": (
        "OpenAI-compatible endpoints under `/v1` (send `Authorization: Bearer <workspace API key>`) and the "
        "platform API under `/api/v1` (the same keys, or a signed-in session)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI is served from our own static files: nothing is fetched from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "ContentPartTypeEnum": ["text", "image_url", "input_audio", "file"],
        "ResponseFormatTypeEnum": ["text", "json_object", "json_schema"],
        "FunctionTypeEnum": ["function"],
    },
}

# ---------------------------------------------------------------------------- runtime configuration (admin)
CONSTANCE_BACKEND = "constance.backends.database.DatabaseBackend"
# With Redis, values are read through the shared cache (one query fills every key) instead of
# one query per key; constance refuses a per-process cache, so without Redis it reads the DB.
if REDIS_URL:
    CONSTANCE_DATABASE_CACHE_BACKEND = "default"
CONSTANCE_ADDITIONAL_FIELDS = {
    "theme_select": [
        "django.forms.fields.ChoiceField",
        {"widget": "django.forms.Select", "choices": (("light", "Light"), ("dark", "Dark"), ("auto", "Auto"))},
    ],
    "tax_behavior_select": [
        "django.forms.fields.ChoiceField",
        {
            "widget": "django.forms.Select",
            "choices": (("exclusive", "Exclusive"), ("inclusive", "Inclusive"), ("unspecified", "Unspecified")),
        },
    ],
}
CONSTANCE_CONFIG = {
    "SITE_NAME": ("Aikeedo", "Product name shown in the header, emails and page titles.", str),
    "SITE_LOGO_URL": ("", "URL of the logo shown in the header (empty: the site name as text).", str),
    "SITE_TAGLINE": ("All your AI tools in one workspace.", "Short line on the home page.", str),
    "SUPPORT_EMAIL": ("support@aikeedo.local", "Address shown to users for help.", str),
    "DEFAULT_THEME": ("auto", "Theme for visitors and users who did not choose one.", "theme_select"),
    "MAX_WORKSPACES_PER_USER": (5, "How many workspaces one user may own, the personal one included.", int),
    "MAX_MEMBERS_PER_WORKSPACE": (10, "Members plus pending invitations allowed in one workspace.", int),
    "INVITATION_TTL_DAYS": (7, "Days an invitation link stays valid.", int),
    "PASSWORD_MIN_LENGTH": (10, "Minimum password length.", int),
    "PASSWORD_REQUIRE_DIGIT": (False, "Passwords must contain a digit.", bool),
    "PASSWORD_REQUIRE_SYMBOL": (False, "Passwords must contain a non-alphanumeric character.", bool),
    "AVATAR_MAX_KB": (1024, "Largest avatar upload in KiB.", int),
    "SIGNUP_OPEN": (True, "Allow new people to sign up.", bool),
    "TRIAL_CREDITS": ("50", "Credits granted to each new personal workspace (0 for none).", str),
    "TRIAL_DAYS": (14, "Days before trial credits expire (0: never).", int),
    "LOW_BALANCE_THRESHOLDS": (
        "100, 10",
        "Comma-separated credit levels that trigger a low-balance alert for new workspaces.",
        str,
    ),
    "BREAKER_FAILURE_THRESHOLD": (
        5,
        "Retryable provider failures (429, 5xx, time-outs) within the window that open a model's circuit.",
        int,
    ),
    "BREAKER_WINDOW_SECONDS": (60, "Window in which provider failures are counted.", int),
    "BREAKER_COOLDOWN_SECONDS": (30, "Seconds an open circuit waits before letting one probe through.", int),
    "RESPONSE_CACHE_TTL_SECONDS": (3600, "How long a cached chat answer is served again (0: never cache).", int),
    "RESPONSE_CACHE_RATE_PERCENT": (
        0,
        "A response-cache hit costs this percent of the same answer from the provider (0: free).",
        int,
    ),
    "TITLE_MODEL": (
        "",
        "Model id that writes conversation titles from the first exchange (empty: the conversation's model).",
        str,
    ),
    "TITLE_CHARGED": (False, "Charge the workspace for the title generation.", bool),
    "RATE_LIMIT_KEY_RPM": (60, "Requests per minute for one API key (0: unlimited).", int),
    "RATE_LIMIT_KEY_TPM": (200_000, "Tokens per minute for one API key (0: unlimited).", int),
    "RATE_LIMIT_USER_RPM": (60, "Requests per minute for one member of a workspace (0: unlimited).", int),
    "RATE_LIMIT_USER_TPM": (200_000, "Tokens per minute for one member of a workspace (0: unlimited).", int),
    "RATE_LIMIT_WORKSPACE_RPM": (600, "Requests per minute for a whole workspace (0: unlimited).", int),
    "RATE_LIMIT_WORKSPACE_TPM": (2_000_000, "Tokens per minute for a whole workspace (0: unlimited).", int),
    "MEDIA_JOB_STALE_SECONDS": (
        120,
        "A running media job whose heartbeat is older than this is retried or failed.",
        int,
    ),
    "MEDIA_JOB_QUEUED_TIMEOUT_SECONDS": (
        600,
        "A queued media job no worker took for this long is re-queued or failed.",
        int,
    ),
    "BILLING_GRACE_DAYS": (
        7,
        "Days a workspace keeps its plan after a failed renewal before paid features pause.",
        int,
    ),
    "BILLING_ALLOW_PROMOTION_CODES": (True, "Let customers enter Stripe promotion codes at checkout.", bool),
    "BILLING_AUTOMATIC_TAX": (False, "Let Stripe Tax compute taxes at checkout (enable Stripe Tax first).", bool),
    "BILLING_TAX_BEHAVIOR": (
        "exclusive",
        "Whether prices created by `billing sync_stripe` include tax: exclusive, inclusive or unspecified.",
        "tax_behavior_select",
    ),
    "BILLING_TRIAL_ONCE": (True, "A workspace gets a plan's trial only once.", bool),
    "MEDIA_JOB_MAX_ATTEMPTS": (3, "Attempts per media job before it fails and its credits are released.", int),
    "MEDIA_API_WAIT_SECONDS": (120, "How long /v1/images/generations waits for its job before answering 504.", int),
    "RESERVATION_MAX_AGE_MINUTES": (
        30,
        "Holds older than this are ended by the sweeper (delivered part settled, rest released).",
        int,
    ),
}
CONSTANCE_CONFIG_FIELDSETS = {
    "Branding": ("SITE_NAME", "SITE_LOGO_URL", "SITE_TAGLINE", "SUPPORT_EMAIL", "DEFAULT_THEME"),
    "Workspaces": ("MAX_WORKSPACES_PER_USER", "MAX_MEMBERS_PER_WORKSPACE", "INVITATION_TTL_DAYS"),
    "Credits": ("TRIAL_CREDITS", "TRIAL_DAYS", "LOW_BALANCE_THRESHOLDS", "RESERVATION_MAX_AGE_MINUTES"),
    "AI providers": ("BREAKER_FAILURE_THRESHOLD", "BREAKER_WINDOW_SECONDS", "BREAKER_COOLDOWN_SECONDS"),
    "Rate limits": (
        "RATE_LIMIT_KEY_RPM",
        "RATE_LIMIT_KEY_TPM",
        "RATE_LIMIT_USER_RPM",
        "RATE_LIMIT_USER_TPM",
        "RATE_LIMIT_WORKSPACE_RPM",
        "RATE_LIMIT_WORKSPACE_TPM",
    ),
    "Media": (
        "MEDIA_JOB_STALE_SECONDS",
        "MEDIA_JOB_QUEUED_TIMEOUT_SECONDS",
        "MEDIA_JOB_MAX_ATTEMPTS",
        "MEDIA_API_WAIT_SECONDS",
    ),
    "Billing": (
        "BILLING_GRACE_DAYS",
        "BILLING_ALLOW_PROMOTION_CODES",
        "BILLING_AUTOMATIC_TAX",
        "BILLING_TAX_BEHAVIOR",
        "BILLING_TRIAL_ONCE",
    ),
    "Chat": ("RESPONSE_CACHE_TTL_SECONDS", "RESPONSE_CACHE_RATE_PERCENT", "TITLE_MODEL", "TITLE_CHARGED"),
    "Security": (
        "SIGNUP_OPEN",
        "PASSWORD_MIN_LENGTH",
        "PASSWORD_REQUIRE_DIGIT",
        "PASSWORD_REQUIRE_SYMBOL",
        "AVATAR_MAX_KB",
    ),
}

# ---------------------------------------------------------------------------- logging
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("LOG_FORMAT", default="console")  # "json" in production
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "structured": {"()": "apps.core.logging.build_formatter", "json": LOG_FORMAT == "json"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        # litellm logs every call at INFO through its own handler as well as ours.
        "LiteLLM": {"level": "WARNING"},
        "LiteLLM Router": {"level": "WARNING"},
        "LiteLLM Proxy": {"level": "WARNING"},
    },
}
