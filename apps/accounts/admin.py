from __future__ import annotations

from typing import Any, TypeVar

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render

from apps.accounts.models import User
from apps.accounts.services import (
    ACCESS_FIELDS,
    AccountError,
    user_delete,
    user_email_set,
    user_email_verify,
    user_on_staff_change,
    user_on_staff_create,
    user_on_staff_password_set,
    user_password_reset_send,
    user_suspend,
    user_unsuspend,
)
from apps.core.admin import staff_user

Inline = TypeVar("Inline", bound=type[admin.options.InlineModelAdmin])

# What other apps show on a user's page (workspaces: their memberships). Registered from those
# apps' admin modules, so accounts never imports the apps built on it.
_user_inlines: list[type[admin.options.InlineModelAdmin]] = []


def user_inline_register(inline: Inline) -> Inline:
    """Show this inline (its `fk_name` pointing at the user) on every user's admin page."""
    if inline not in _user_inlines:
        _user_inlines.append(inline)
    return inline


class SuspendForm(forms.Form):
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 3}))


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ["-date_joined"]
    list_display = ["email", "display_name", "is_active", "suspended_at", "is_staff", "date_joined", "last_login"]
    list_filter = ["is_staff", "is_superuser", "is_active", ("suspended_at", admin.EmptyFieldListFilter), "date_joined"]
    search_fields = ["email", "display_name", "emailaddress__email"]
    # is_active follows suspension: it changes only through the suspend/unsuspend actions,
    # which end sessions and write the audit row.
    readonly_fields = ["is_active", "last_login", "date_joined", "suspended_at", "suspension_reason"]
    actions = ["suspend", "unsuspend", "verify_email", "send_password_reset"]
    show_full_result_count = False
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("display_name", "avatar", "locale", "timezone", "preferences")}),
        ("Status", {"fields": ("is_active", "suspended_at", "suspension_reason")}),
        ("Permissions", {"fields": ("is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)

    def get_inlines(self, request: HttpRequest, obj: User | None) -> list[type[admin.options.InlineModelAdmin]]:
        # A user being added has nothing of theirs yet; sign-up side effects create the first.
        return list(_user_inlines) if obj is not None else []

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        if not change:
            super().save_model(request, obj, form, change)
            user_on_staff_create(user=obj, acting_user=staff_user(request))
            return
        if "email" in form.changed_data:
            # The address is also the allauth login address: the service replaces both.
            new_email = obj.email
            obj.email = form.initial["email"]
            super().save_model(request, obj, form, change)
            user_email_set(user=obj, email=new_email, acting_user=staff_user(request))
            return
        super().save_model(request, obj, form, change)
        changed = {field: form.cleaned_data.get(field) for field in form.changed_data}
        user_on_staff_change(user=obj, changed=changed, acting_user=staff_user(request))

    def get_readonly_fields(self, request: HttpRequest, obj: User | None = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        if not staff_user(request).is_superuser:
            # Only superusers grant staff, superuser or permissions: staff cannot raise themselves.
            fields += sorted(ACCESS_FIELDS)
        return fields

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        response = super().user_change_password(request, id, form_url)
        if request.method == "POST" and response.status_code == 302:
            target = User.objects.filter(pk=id).first()
            if target is not None:
                user_on_staff_password_set(user=target, acting_user=staff_user(request))
        return response

    def delete_model(self, request: HttpRequest, obj: User) -> None:
        # Through the service: solely owned workspaces go too and the audit trail is anonymised.
        user_delete(user=obj, acting_user=staff_user(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        for user in queryset:
            user_delete(user=user, acting_user=staff_user(request))

    @admin.action(description="Suspend selected users")
    def suspend(self, request: HttpRequest, queryset: QuerySet[User]) -> HttpResponse | None:
        if "apply" in request.POST:
            form = SuspendForm(request.POST)
            if form.is_valid():
                done = 0
                for user in queryset:
                    try:
                        user_suspend(user=user, reason=form.cleaned_data["reason"], acting_user=staff_user(request))
                        done += 1
                    except AccountError as exc:
                        self.message_user(request, f"{user}: {exc.message}", messages.ERROR)
                self.message_user(request, f"Suspended {done} user(s).", messages.SUCCESS)
                return HttpResponseRedirect(request.get_full_path())
        else:
            form = SuspendForm()
        return render(
            request,
            "admin/accounts/suspend.html",
            {
                **self.admin_site.each_context(request),
                "users": list(queryset),
                "form": form,
                "title": "Suspend users",
                "opts": self.model._meta,
            },
        )

    @admin.action(description="Unsuspend selected users")
    def unsuspend(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        for user in queryset:
            user_unsuspend(user=user, acting_user=staff_user(request))
        self.message_user(request, f"Unsuspended {queryset.count()} user(s).", messages.SUCCESS)

    @admin.action(description="Mark primary email as verified")
    def verify_email(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        for user in queryset:
            user_email_verify(user=user, acting_user=staff_user(request))
        self.message_user(request, f"Verified the email of {queryset.count()} user(s).", messages.SUCCESS)

    @admin.action(description="Send password reset email")
    def send_password_reset(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        sent = 0
        for user in queryset:
            try:
                user_password_reset_send(user=user, request=request, acting_user=staff_user(request))
                sent += 1
            except AccountError as exc:
                self.message_user(request, f"{user}: {exc.message}", messages.ERROR)
        self.message_user(request, f"Sent {sent} password reset email(s).", messages.SUCCESS)
