from __future__ import annotations

from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path

from apps.core import views as core_views

urlpatterns = [
    path("", core_views.home, name="home"),
    # The dashboard and the app shell's extras (/favicon.ico).
    path("", include("apps.dashboard.urls")),
    path("healthz", core_views.healthz, name="healthz"),
    path("readyz", core_views.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("account/", include("apps.accounts.urls")),
    path("workspaces/", include("apps.workspaces.urls")),
    path("credits/", include("apps.credits.urls")),
    path("api-keys/", include("apps.apikeys.urls")),
    path("billing/", include("apps.billing.urls")),
    # Stripe webhooks: dj-stripe's endpoint behind a signature check, one URL per registered
    # endpoint (`billing webhook`).
    path("stripe/", include("apps.billing.stripe_urls", namespace="djstripe")),
    path("chat/", include("apps.chat.urls")),
    path("studio/", include("apps.media.urls")),
    path("documents/", include("apps.documents.urls")),
    path("presets/", include("apps.presets.urls")),
    # The OpenAI-compatible API and the platform API: every route of each in one urlconf.
    path("v1/", include("apps.api.openai_urls")),
    path("api/", include("apps.api.urls")),
]

if settings.DEBUG:
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)

# Under /v1/ and /api/ the API's JSON error shape, elsewhere the site's pages.
handler400 = "apps.api.handlers.bad_request"
handler403 = "apps.api.handlers.permission_denied"
handler404 = "apps.api.handlers.page_not_found"
handler500 = "apps.api.handlers.server_error"
