"""The profile page: name, language, time zone, preferences and avatar, and the middleware that
applies the user's language and time zone to their requests."""

from __future__ import annotations

import datetime
import re
import zoneinfo
from pathlib import Path
from typing import Any

import pytest
from constance.test import override_config
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone, translation
from PIL import Image
from pytest_django import DjangoCaptureOnCommitCallbacks

from apps.accounts.middleware import UserPreferencesMiddleware
from apps.accounts.models import User
from apps.generation.catalog import catalog_seed_defaults
from apps.generation.models import AIModel, ModelFallback, Provider
from tests.accounts.helpers import png_bytes
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PROFILE = "/account/profile/"


def profile_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "display_name": "Ada Lovelace",
        "locale": "fr",
        "timezone": "Europe/Paris",
        "theme": "dark",
        "default_model": "mock-chat",
        "notify_product_updates": "",
        "notify_low_balance": "on",
        "notify_security": "on",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v != ""}


def media_files() -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.fixture(autouse=True)
def catalog(db: None) -> None:
    """The default model catalog (mock-chat offered; the OpenAI models on a provider not
    enabled), seeded again in case a transactional test flushed what the migrations seeded."""
    catalog_seed_defaults(Provider, AIModel, ModelFallback)


@pytest.fixture
def user() -> User:
    return UserFactory.create(display_name="Before", locale="en", timezone="UTC")


@pytest.fixture
def client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_profile_page_shows_the_current_values(client: Client, user: User) -> None:
    user.preferences = {"theme": "light", "default_model": "claude-x", "notifications": {"low_balance": False}}
    user.save()

    response = client.get(PROFILE)

    assert response.status_code == 200
    form = response.context["form"]
    assert form["display_name"].value() == "Before"
    assert form["theme"].value() == "light"
    assert form["default_model"].value() == "claude-x"
    assert form["notify_low_balance"].value() is False
    assert form["notify_security"].value() is True


def test_profile_update_saves_name_locale_timezone_and_preferences(client: Client, user: User) -> None:
    response = client.post(PROFILE, profile_data())

    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:profile")
    user.refresh_from_db()
    assert user.display_name == "Ada Lovelace"
    assert user.locale == "fr"
    assert user.timezone == "Europe/Paris"
    assert user.preferences == {
        "theme": "dark",
        "default_model": "mock-chat",
        "notifications": {"product_updates": False, "low_balance": True, "security": True},
    }
    assert user.preference("theme") == "dark"


def test_profile_update_keeps_unrelated_preferences(client: Client, user: User) -> None:
    user.preferences = {"sidebar": "collapsed"}
    user.save()

    client.post(PROFILE, profile_data())

    user.refresh_from_db()
    assert user.preferences["sidebar"] == "collapsed"


def test_chosen_theme_is_applied_to_pages(client: Client) -> None:
    client.post(PROFILE, profile_data(theme="dark"))

    assert 'data-theme="dark"' in client.get(PROFILE).content.decode()


def test_invalid_timezone_is_refused_with_400_and_nothing_saved(client: Client, user: User) -> None:
    response = client.post(PROFILE, profile_data(timezone="Mars/Olympus_Mons"))

    assert response.status_code == 400
    assert response.context["form"].errors["timezone"]
    assert "field-error" in response.content.decode()
    user.refresh_from_db()
    assert (user.display_name, user.locale, user.timezone) == ("Before", "en", "UTC")
    assert user.preferences == {}


def test_invalid_post_does_not_show_unsaved_values_as_the_current_user(client: Client) -> None:
    response = client.post(PROFILE, profile_data(display_name="Not Saved", timezone="Nowhere/Land"))

    assert response.status_code == 400
    # The header shows who is signed in: still the stored name, not the rejected input.
    assert response.context["user"].display_name == "Before"
    assert "Not Saved" in response.content.decode()  # the form keeps what was typed


def test_unknown_locale_is_refused(client: Client, user: User) -> None:
    response = client.post(PROFILE, profile_data(locale="xx"))

    assert response.status_code == 400
    assert response.context["form"].errors["locale"]
    user.refresh_from_db()
    assert user.locale == "en"


def test_unknown_theme_is_refused(client: Client, user: User) -> None:
    response = client.post(PROFILE, profile_data(theme="neon"))

    assert response.status_code == 400
    user.refresh_from_db()
    assert user.preferences == {}


def test_avatar_png_is_accepted(client: Client, user: User) -> None:
    upload = SimpleUploadedFile("me.png", png_bytes((16, 16)), content_type="image/png")

    response = client.post(PROFILE, {**profile_data(), "avatar": upload})

    assert response.status_code == 302
    user.refresh_from_db()
    assert user.avatar.name.startswith("avatars/")
    assert user.avatar.name.endswith(".png")
    with Image.open(user.avatar.path) as image:
        assert image.format == "PNG"
        assert image.size == (16, 16)
    assert f'src="{user.avatar.url}"' in client.get(PROFILE).content.decode()


def test_avatar_file_name_does_not_keep_the_uploaded_name(client: Client, user: User) -> None:
    upload = SimpleUploadedFile("Jane Doe passport scan.png", png_bytes(), content_type="image/png")

    client.post(PROFILE, {**profile_data(), "avatar": upload})

    user.refresh_from_db()
    assert "passport" not in user.avatar.name
    assert "Jane" not in user.avatar.name


def test_avatar_extension_follows_the_content_not_the_name(client: Client, user: User) -> None:
    upload = SimpleUploadedFile("photo.jpg", png_bytes(), content_type="image/jpeg")

    response = client.post(PROFILE, {**profile_data(), "avatar": upload})

    assert response.status_code == 302
    user.refresh_from_db()
    assert user.avatar.name.endswith(".png")


def test_text_file_named_png_is_refused_and_nothing_saved(client: Client, user: User) -> None:
    upload = SimpleUploadedFile("evil.png", b"<script>alert(1)</script>\n" * 10, content_type="image/png")

    response = client.post(PROFILE, {**profile_data(), "avatar": upload})

    assert response.status_code == 400
    assert response.context["form"].errors["avatar"]
    user.refresh_from_db()
    assert not user.avatar
    assert user.display_name == "Before"
    assert media_files() == []


@override_config(AVATAR_MAX_KB=2)
def test_too_large_image_is_refused_and_nothing_saved(client: Client, user: User) -> None:
    content = png_bytes((64, 64), noise=True)
    assert len(content) > 2 * 1024
    upload = SimpleUploadedFile("big.png", content, content_type="image/png")

    response = client.post(PROFILE, {**profile_data(), "avatar": upload})

    assert response.status_code == 400
    assert any("too large" in e for e in response.context["form"].errors["avatar"])
    user.refresh_from_db()
    assert not user.avatar
    assert user.display_name == "Before"
    assert media_files() == []


@override_config(AVATAR_MAX_KB=2)
def test_image_under_the_configured_limit_is_accepted(client: Client, user: User) -> None:
    upload = SimpleUploadedFile("small.png", png_bytes((8, 8)), content_type="image/png")

    response = client.post(PROFILE, {**profile_data(), "avatar": upload})

    assert response.status_code == 302
    user.refresh_from_db()
    assert user.avatar


def test_svg_is_refused(client: Client, user: User) -> None:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect width="1" height="1"/></svg>'
    upload = SimpleUploadedFile("logo.svg", svg, content_type="image/svg+xml")

    response = client.post(PROFILE, {**profile_data(), "avatar": upload})

    assert response.status_code == 400
    user.refresh_from_db()
    assert not user.avatar


def test_replacing_the_avatar_removes_the_old_file(
    client: Client, user: User, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    client.post(PROFILE, {**profile_data(), "avatar": SimpleUploadedFile("a.png", png_bytes(), "image/png")})
    user.refresh_from_db()
    first = Path(user.avatar.path)

    with django_capture_on_commit_callbacks(execute=True):
        client.post(PROFILE, {**profile_data(), "avatar": SimpleUploadedFile("b.png", png_bytes((9, 9)), "image/png")})

    user.refresh_from_db()
    assert Path(user.avatar.path).exists()
    assert not first.exists()
    assert media_files() == [Path(user.avatar.path)]


def test_clearing_the_avatar_removes_the_file(
    client: Client, user: User, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    client.post(PROFILE, {**profile_data(), "avatar": SimpleUploadedFile("a.png", png_bytes(), "image/png")})
    user.refresh_from_db()
    path = Path(user.avatar.path)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(PROFILE, {**profile_data(), "remove_avatar": "on"})

    assert response.status_code == 302
    user.refresh_from_db()
    assert not user.avatar
    assert not path.exists()


def test_saving_without_a_new_upload_keeps_the_avatar(
    client: Client, user: User, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    client.post(PROFILE, {**profile_data(), "avatar": SimpleUploadedFile("a.png", png_bytes(), "image/png")})
    user.refresh_from_db()
    name = user.avatar.name

    with django_capture_on_commit_callbacks(execute=True):
        client.post(PROFILE, profile_data(display_name="Renamed"))

    user.refresh_from_db()
    assert user.avatar.name == name
    assert Path(user.avatar.path).exists()


def test_avatar_field_shows_the_picture_not_its_storage_path(client: Client, user: User) -> None:
    client.post(PROFILE, {**profile_data(), "avatar": SimpleUploadedFile("a.png", png_bytes(), "image/png")})
    user.refresh_from_db()

    html = client.get(PROFILE).content.decode()

    field = html.split('data-testid="avatar-field"')[1].split("</fieldset>")[0]
    assert f'src="{user.avatar.url}"' in field
    assert 'alt="Your avatar"' in field
    assert "Currently" not in html  # Django's default widget printed the stored file's name
    assert f">{user.avatar.name}<" not in html
    assert user.avatar.name not in field.replace(f'src="{user.avatar.url}"', "")
    assert 'name="remove_avatar"' in field
    assert "Remove my avatar" in field
    assert 'accept="image/jpeg,image/png,image/webp,image/gif"' in field
    assert "up to 1,024 KiB" in field
    assert "js/avatar.js" in html


def test_without_an_avatar_the_field_offers_an_upload_and_no_removal(client: Client) -> None:
    html = client.get(PROFILE).content.decode()

    field = html.split('data-testid="avatar-field"')[1].split("</fieldset>")[0]
    assert "Upload a picture" in field
    assert 'type="file" name="avatar"' in field
    assert 'name="remove_avatar"' not in field
    assert "data-avatar-preview" in field
    image = field.split("<img")[1].split(">")[0]
    assert " src=" not in image  # no empty src: a browser would fetch the page itself


def test_a_new_picture_wins_over_remove_in_the_same_post(
    client: Client, user: User, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    client.post(PROFILE, {**profile_data(), "avatar": SimpleUploadedFile("a.png", png_bytes(), "image/png")})
    user.refresh_from_db()
    first = Path(user.avatar.path)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            PROFILE,
            {**profile_data(), "remove_avatar": "on", "avatar": SimpleUploadedFile("b.png", png_bytes(), "image/png")},
        )

    assert response.status_code == 302
    user.refresh_from_db()
    assert user.avatar
    assert Path(user.avatar.path).exists()
    assert not first.exists()


def test_remove_without_an_avatar_changes_nothing(client: Client, user: User) -> None:
    response = client.post(PROFILE, {**profile_data(), "remove_avatar": "on"})

    assert response.status_code == 302
    user.refresh_from_db()
    assert not user.avatar
    assert media_files() == []


def test_the_avatar_script_previews_without_inline_code() -> None:
    script = (Path(settings.BASE_DIR) / "static" / "js" / "avatar.js").read_text()

    assert "URL.createObjectURL" in script
    assert "remove_avatar" in script


# ---------------------------------------------------------------------------- default model


def _options(html: str) -> dict[str, str]:
    select = html.split('name="default_model"')[1].split("</select>")[0]
    return {
        value: label.strip() for value, label in re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select)
    }


def _selected(html: str) -> str | None:
    select = html.split('name="default_model"')[1].split("</select>")[0]
    found = re.search(r'<option value="([^"]*)" selected', select)
    return found[1] if found else None


def test_default_model_is_a_picker_of_the_catalogs_chat_models(client: Client) -> None:
    options = _options(client.get(PROFILE).content.decode())

    assert options[""] == "Automatic: the first model available"
    assert options["mock-chat"] == "Mock chat (mock-chat)"
    assert "mock-embed" not in options  # embeddings only
    assert "gpt-4o-mini" not in options  # its provider (OpenAI) is not enabled here


def test_a_model_offered_later_appears_and_a_disabled_one_goes(client: Client) -> None:
    openai = Provider.objects.get(kind="openai")
    openai.enabled = True
    openai.set_api_key("sk-test-profile")
    openai.save()
    AIModel.objects.filter(model_id="mock-chat").update(enabled=False)

    options = _options(client.get(PROFILE).content.decode())

    assert "gpt-4o-mini" in options
    assert "mock-chat" not in options


def test_choosing_a_model_not_offered_is_refused_and_nothing_saved(client: Client, user: User) -> None:
    response = client.post(PROFILE, profile_data(default_model="gpt-4o"))

    assert response.status_code == 400
    assert response.context["form"].errors["default_model"] == ["Choose one of the listed models."]
    user.refresh_from_db()
    assert user.preferences == {}


def test_a_stored_model_no_longer_offered_is_kept_and_marked(client: Client, user: User) -> None:
    user.preferences = {"default_model": "gpt-4o-mini"}
    user.save()

    html = client.get(PROFILE).content.decode()

    assert _options(html)["gpt-4o-mini"] == "gpt-4o-mini (not available now)"
    assert _selected(html) == "gpt-4o-mini"
    saved = client.post(PROFILE, profile_data(default_model="gpt-4o-mini", display_name="Renamed"))
    assert saved.status_code == 302
    user.refresh_from_db()
    assert (user.display_name, user.preference("default_model")) == ("Renamed", "gpt-4o-mini")
    # Picking "Automatic" clears it, and the unavailable model is then no longer listed.
    client.post(PROFILE, profile_data(default_model=""))
    user.refresh_from_db()
    assert user.preference("default_model") == ""
    assert "gpt-4o-mini" not in _options(client.get(PROFILE).content.decode())


def test_chosen_model_is_shown_selected(client: Client, user: User) -> None:
    client.post(PROFILE, profile_data(default_model="mock-chat"))

    assert _selected(client.get(PROFILE).content.decode()) == "mock-chat"


@pytest.mark.outsider("accounts:profile")
def test_anonymous_profile_redirects_to_login() -> None:
    response = Client().get(PROFILE)

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('account_login')}?next={PROFILE}"


@pytest.mark.outsider("accounts:profile")
def test_anonymous_profile_post_changes_nothing(user: User) -> None:
    response = Client().post(PROFILE, profile_data())

    assert response.status_code == 302
    user.refresh_from_db()
    assert user.display_name == "Before"


# ---------------------------------------------------------------------------- language and time zone


def test_users_language_is_used_for_their_pages(client: Client) -> None:
    client.post(PROFILE, profile_data(locale="de"))

    response = client.get(PROFILE)

    assert response["Content-Language"] == "de"
    # Django's own German catalogue: the form error comes out translated.
    error = client.post(PROFILE, profile_data(locale="de", timezone=""))
    assert "Dieses Feld ist zwingend erforderlich." in error.content.decode()


def test_anonymous_visitors_get_the_default_language() -> None:
    response = Client().get(reverse("account_login"))

    assert response["Content-Language"] == "en"


def _through_middleware(user: Any) -> tuple[str, str, str | None]:
    seen: dict[str, Any] = {}

    def view(request: HttpRequest) -> HttpResponse:
        seen["tz"] = timezone.get_current_timezone_name()
        seen["lang"] = translation.get_language()
        seen["request_lang"] = getattr(request, "LANGUAGE_CODE", None)
        return HttpResponse("ok")

    request = RequestFactory().get("/")
    request.user = user
    UserPreferencesMiddleware(view)(request)
    return seen["tz"], seen["lang"], seen["request_lang"]


def test_middleware_activates_the_users_timezone_and_language() -> None:
    user = UserFactory.create(locale="es", timezone="America/Bogota")

    tz, lang, request_lang = _through_middleware(user)

    assert (tz, lang, request_lang) == ("America/Bogota", "es", "es")


def test_middleware_falls_back_to_the_default_for_a_bad_stored_timezone() -> None:
    user = UserFactory.create(timezone="Not/AZone")

    # Whatever zone the thread had before must not be kept either.
    with timezone.override(zoneinfo.ZoneInfo("Asia/Tokyo")):
        tz, _, _ = _through_middleware(user)

    assert tz == settings.TIME_ZONE


def test_middleware_uses_the_default_timezone_for_anonymous_visitors() -> None:
    from django.contrib.auth.models import AnonymousUser

    with timezone.override(zoneinfo.ZoneInfo("Asia/Tokyo")):
        tz, _, _ = _through_middleware(AnonymousUser())

    assert tz == settings.TIME_ZONE


def test_users_timezone_does_not_outlive_their_request() -> None:
    user = UserFactory.create(timezone="Asia/Tokyo")

    _through_middleware(user)

    assert timezone.get_current_timezone_name() == settings.TIME_ZONE


def test_rendered_times_use_the_users_timezone(user: User) -> None:
    from django.template import engines

    user.timezone = "Asia/Kathmandu"
    user.save()
    seen: dict[str, str] = {}

    def view(request: HttpRequest) -> HttpResponse:
        moment = datetime.datetime(2030, 1, 1, 0, 0, tzinfo=zoneinfo.ZoneInfo("UTC"))
        seen["html"] = engines["django"].from_string("{{ moment|date:'H:i e' }}").render({"moment": moment})
        return HttpResponse(seen["html"])

    request = RequestFactory().get("/")
    request.user = user
    UserPreferencesMiddleware(view)(request)

    assert seen["html"] == "05:45 +0545"
