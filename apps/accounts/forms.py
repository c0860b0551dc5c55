from __future__ import annotations

import uuid
import zoneinfo
from typing import Any

from allauth.account import forms as allauth_forms
from django import forms
from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS
from django.db import transaction

from apps.accounts.models import Theme, User
from apps.accounts.validators import AVATAR_CONTENT_TYPES, validate_avatar
from apps.core.forms import CleanTextMixin

TIMEZONE_CHOICES = [(tz, tz) for tz in sorted(zoneinfo.available_timezones())]
THROTTLED = "too_many_login_attempts"


class LoginForm(allauth_forms.LoginForm):
    """allauth's sign-in form. When wrong passwords have throttled the account from this
    address (or everywhere), the error says how to get in now: an emailed sign-in code."""

    throttled_message = (
        "Too many failed sign-in attempts. Email yourself a sign-in code to get in now, "
        "or try your password again in a few minutes."
    )

    def clean(self) -> dict[str, Any]:
        try:
            return super().clean()
        except forms.ValidationError as error:
            if getattr(error, "code", None) == THROTTLED:
                raise forms.ValidationError(self.throttled_message, code=THROTTLED) from error
            raise

    @property
    def throttled(self) -> bool:
        return self.has_error(NON_FIELD_ERRORS, THROTTLED)


AVATAR_ACCEPT = ",".join(AVATAR_CONTENT_TYPES.values())


class ProfileForm(CleanTextMixin, forms.ModelForm):
    """The profile page. `model_choices` are the chat models offered as the default model
    (`apps.accounts.preferences`); a stored model that is no longer offered (disabled, removed)
    stays selectable as it is, marked so, rather than being lost on the next save."""

    identifier_fields = ("default_model",)
    theme = forms.ChoiceField(choices=[("", "Site default"), *Theme.choices], required=False)
    default_model = forms.ChoiceField(
        required=False,
        help_text="Model preselected in new chats.",
        error_messages={"invalid_choice": "Choose one of the listed models."},
    )
    remove_avatar = forms.BooleanField(required=False, label="Remove my avatar")
    notify_product_updates = forms.BooleanField(required=False, label="Product updates by email")
    notify_low_balance = forms.BooleanField(required=False, label="Low credit balance alerts")
    notify_security = forms.BooleanField(required=False, label="Security alerts (new sign-ins, password changes)")
    timezone = forms.ChoiceField(choices=TIMEZONE_CHOICES)
    locale = forms.ChoiceField(choices=settings.LANGUAGES, label="Language")

    class Meta:
        model = User
        fields = ["display_name", "avatar", "locale", "timezone"]
        widgets = {"avatar": forms.FileInput(attrs={"accept": AVATAR_ACCEPT})}

    def __init__(self, *args: Any, model_choices: list[tuple[str, str]] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        prefs = self.instance.preferences or {}
        notifications = prefs.get("notifications") or {}
        stored_model = str(prefs.get("default_model") or "")
        self.fields["theme"].initial = prefs.get("theme", "")
        self.fields["default_model"].initial = stored_model
        field: Any = self.fields["default_model"]
        field.choices = default_model_choices(model_choices or [], stored_model)
        self.fields["notify_product_updates"].initial = notifications.get("product_updates", True)
        self.fields["notify_low_balance"].initial = notifications.get("low_balance", True)
        self.fields["notify_security"].initial = notifications.get("security", True)
        self._stored_avatar = self.instance.avatar.name if self.instance.avatar else ""
        self.avatar_max_bytes = avatar_max_bytes()
        self.fields["avatar"].help_text = (
            f"PNG, JPEG, WebP or GIF, up to {self.avatar_max_bytes // 1024:,} KiB. "
            "The people in your workspaces see it."
        )

    def visible_fields(self) -> list[Any]:
        # The avatar (picture, file input, remove option) is laid out by the page as one group.
        return [field for field in super().visible_fields() if field.name not in AVATAR_FIELDS]

    def clean_avatar(self) -> Any:
        avatar = self.cleaned_data.get("avatar")
        if avatar and hasattr(avatar, "content_type"):  # a new upload, not the stored file
            extension = validate_avatar(avatar)
            # A random name with the extension of the content: the uploaded name may say more
            # about the person than they meant to share, and it is served from a public URL.
            avatar.name = f"{uuid.uuid4().hex}.{extension}"
        return avatar

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        new_upload = hasattr(data.get("avatar"), "content_type")
        if data.get("remove_avatar") and not new_upload:
            # False clears the file field (what Django's "Clear" checkbox posts); a new picture
            # chosen at the same time wins over removing the old one.
            data["avatar"] = False
        return data

    def save(self, commit: bool = True) -> User:
        user: User = super().save(commit=False)
        prefs = dict(user.preferences or {})
        prefs["theme"] = self.cleaned_data.get("theme") or ""
        prefs["default_model"] = self.cleaned_data.get("default_model") or ""
        prefs["notifications"] = {
            "product_updates": bool(self.cleaned_data.get("notify_product_updates")),
            "low_balance": bool(self.cleaned_data.get("notify_low_balance")),
            "security": bool(self.cleaned_data.get("notify_security")),
        }
        user.preferences = prefs
        if commit:
            user.save()
            self._delete_replaced_avatar(user)
        return user

    def _delete_replaced_avatar(self, user: User) -> None:
        old = self._stored_avatar
        if old and old != (user.avatar.name or ""):
            storage = user.avatar.storage
            # After commit: a rolled-back save must still find its file.
            transaction.on_commit(lambda: storage.delete(old))


AVATAR_FIELDS = ("avatar", "remove_avatar")


def avatar_max_bytes() -> int:
    """The largest avatar upload, set by staff (Config > AVATAR_MAX_KB)."""
    from constance import config

    return int(config.AVATAR_MAX_KB) * 1024


def default_model_choices(models: list[tuple[str, str]], stored: str) -> list[tuple[str, str]]:
    """The "Default model" options: automatic, the models offered, and the stored model when it
    is no longer among them (kept, so saving the page unchanged does not drop it)."""
    choices = [("", "Automatic: the first model available"), *models]
    if stored and stored not in {value for value, _ in models}:
        choices.append((stored, f"{stored} (not available now)"))
    return choices


class DeleteAccountForm(forms.Form):
    password = forms.CharField(widget=forms.PasswordInput, required=False, help_text="Your current password.")
    confirm = forms.CharField(help_text="Type DELETE to confirm.")

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        if not user.has_usable_password():
            del self.fields["password"]

    def clean_confirm(self) -> str:
        value = self.cleaned_data["confirm"].strip()
        if value != "DELETE":
            raise forms.ValidationError("Type DELETE (in capitals) to confirm.")
        return value

    def clean_password(self) -> str:
        password = self.cleaned_data.get("password") or ""
        if not self.user.check_password(password):
            raise forms.ValidationError("The password is not correct.")
        return password
