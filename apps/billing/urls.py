from __future__ import annotations

from django.urls import path

from apps.billing import views

app_name = "billing"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("pricing/", views.pricing, name="pricing"),
    path("subscribe/", views.subscribe, name="subscribe"),
    path("packs/buy/", views.buy_pack, name="buy_pack"),
    path("checkout/success/", views.success, name="success"),
    path("checkout/status/", views.checkout_status, name="checkout_status"),
    path("portal/", views.portal, name="portal"),
    path("change/", views.change, name="change"),
    path("cancel/", views.cancel, name="cancel"),
    path("resume/", views.resume, name="resume"),
    path("redeem/", views.redeem, name="redeem"),
    path("topup/", views.topup, name="topup"),
]
