from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def drop_unproven_verified_email(request: HttpRequest, email: str | None) -> None:
    """An address stashed as verified (the visitor opened an invitation link sent to it)
    proves only that address. allauth's setup_user_email would otherwise add it to a sign-up
    with any other address as the new account's primary, verified email."""
    session = getattr(request, "session", None)
    if session is None:
        return
    stashed = session.get("account_verified_email")
    if stashed and stashed.lower() != (email or "").lower():
        session["account_verified_email"] = None


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        from constance import config

        return bool(config.SIGNUP_OPEN)

    def save_user(self, request: HttpRequest, user: Any, form: Any, commit: bool = True) -> Any:
        user = super().save_user(request, user, form, commit=commit)
        drop_unproven_verified_email(request, user.email)
        # The social sign-up form saves through here too; SocialAccountAdapter.save_user then
        # runs the sign-up side effects once, with the provider as the method.
        if commit and getattr(form, "sociallogin", None) is None:
            from apps.accounts.services import user_on_signup

            user_on_signup(user=user, method="email")
        return user

    def respond_user_inactive(self, request: HttpRequest, user: Any) -> HttpResponse:
        # A suspended user gets a clear page instead of allauth's generic "inactive" one.
        return render(request, "account/account_inactive.html", {"suspended_user": user}, status=403)


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def save_user(self, request: HttpRequest, sociallogin: Any, form: Any = None) -> Any:
        drop_unproven_verified_email(request, form.cleaned_data.get("email") if form else sociallogin.user.email)
        user = super().save_user(request, sociallogin, form)
        from apps.accounts.services import user_on_signup

        user_on_signup(user=user, method=sociallogin.account.provider)
        return user
