from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core.internal import ratelimit
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialApp
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from apps.core.middleware import client_ip

# A per-account ceiling on wrong passwords from all addresses together (ACCOUNT_RATE_LIMITS).
LOGIN_FAILED_ACCOUNT = "login_failed_account"


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

    def get_client_ip(self, request: HttpRequest) -> str:
        # One rule for the client address everywhere (rate limits, sessions, notification mails):
        # X-Forwarded-For only from TRUSTED_PROXIES, instead of allauth's own header handling.
        ip = client_ip(request)
        if ip is None:
            raise PermissionDenied("Unable to determine client IP address")
        return ip

    def _get_login_attempts_cache_key(self, request: HttpRequest, **credentials: Any) -> str:
        # allauth counts wrong passwords per account, so anyone could lock the owner out by
        # typing five wrong ones. Per (account, address), they only lock out the typist.
        account_key = super()._get_login_attempts_cache_key(request, **credentials)
        return f"{account_key}:{ratelimit.get_ip(request)}"

    def pre_authenticate(self, request: HttpRequest, **credentials: Any) -> None:
        super().pre_authenticate(request, **credentials)
        account_key = super()._get_login_attempts_cache_key(request, **credentials)
        usage = ratelimit.consume(request, app="allauth.account", action=LOGIN_FAILED_ACCOUNT, key=account_key)
        if usage is None:
            # Refused before the password was checked: not a failure from this address.
            self._rollback_login_failed_rl_usage()
            raise self.validation_error("too_many_login_attempts")
        # Rolled back with the per-address counts when the password turns out right.
        self._login_failed_rl_usage.usage.extend(usage.usage)

    def _delete_login_attempts_cached_email(self, request: HttpRequest, **credentials: Any) -> None:
        # After a password reset: the new password must work at once, from this address and
        # under the per-account ceiling.
        super()._delete_login_attempts_cached_email(request, **credentials)
        account_key = super()._get_login_attempts_cache_key(request, **credentials)
        ratelimit.clear(request, app="allauth.account", action=LOGIN_FAILED_ACCOUNT, key=account_key)

    def respond_user_inactive(self, request: HttpRequest, user: Any) -> HttpResponse:
        # A suspended user gets a clear page instead of allauth's generic "inactive" one.
        return render(request, "account/account_inactive.html", {"suspended_user": user}, status=403)


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def get_provider(self, request: HttpRequest, provider: str, client_id: str | None = None) -> Any:
        # A provider with no app (no SocialApp row for this site, no APPS entry in
        # SOCIALACCOUNT_PROVIDERS) is not offered on this site: its login, callback and token
        # URLs answer 404 instead of allauth's SocialApp.DoesNotExist (a 500).
        try:
            return super().get_provider(request, provider, client_id=client_id)
        except SocialApp.DoesNotExist:
            raise Http404(f"Sign-in with {provider} is not configured.") from None

    def save_user(self, request: HttpRequest, sociallogin: Any, form: Any = None) -> Any:
        drop_unproven_verified_email(request, form.cleaned_data.get("email") if form else sociallogin.user.email)
        user = super().save_user(request, sociallogin, form)
        from apps.accounts.services import user_on_signup

        user_on_signup(user=user, method=sociallogin.account.provider)
        return user
