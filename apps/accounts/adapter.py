from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        from constance import config

        return bool(config.SIGNUP_OPEN)

    def save_user(self, request: HttpRequest, user: Any, form: Any, commit: bool = True) -> Any:
        user = super().save_user(request, user, form, commit=commit)
        if commit:
            from apps.accounts.services import user_on_signup

            user_on_signup(user=user, method="email")
        return user

    def respond_user_inactive(self, request: HttpRequest, user: Any) -> HttpResponse:
        # A suspended user gets a clear page instead of allauth's generic "inactive" one.
        return render(request, "account/account_inactive.html", {"suspended_user": user}, status=403)


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def save_user(self, request: HttpRequest, sociallogin: Any, form: Any = None) -> Any:
        user = super().save_user(request, sociallogin, form)
        from apps.accounts.services import user_on_signup

        user_on_signup(user=user, method=sociallogin.account.provider)
        return user
