from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError


class ConfigurablePasswordValidator:
    """Password rules set by staff in the admin (Config > Security), read at validation time."""

    def validate(self, password: str, user: Any = None) -> None:
        from constance import config

        errors = []
        if len(password) < config.PASSWORD_MIN_LENGTH:
            errors.append(
                ValidationError(
                    "This password is too short. It must contain at least %(min_length)d characters.",
                    code="password_too_short",
                    params={"min_length": config.PASSWORD_MIN_LENGTH},
                )
            )
        if config.PASSWORD_REQUIRE_DIGIT and not any(ch.isdigit() for ch in password):
            errors.append(ValidationError("The password must contain a digit.", code="password_no_digit"))
        if config.PASSWORD_REQUIRE_SYMBOL and password.isalnum():
            errors.append(ValidationError("The password must contain a symbol.", code="password_no_symbol"))
        if errors:
            raise ValidationError(errors)

    def get_help_text(self) -> str:
        from constance import config

        text = f"Your password must contain at least {config.PASSWORD_MIN_LENGTH} characters"
        if config.PASSWORD_REQUIRE_DIGIT:
            text += ", a digit"
        if config.PASSWORD_REQUIRE_SYMBOL:
            text += ", a symbol"
        return text + "."


AVATAR_CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}
AVATAR_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif"}


def validate_avatar(upload: Any) -> str:
    """Check the upload by content (Pillow), not by its name, and against the size limit.
    Returns the file extension that matches the content."""
    from constance import config
    from PIL import Image, UnidentifiedImageError

    max_bytes = config.AVATAR_MAX_KB * 1024
    if upload.size > max_bytes:
        raise ValidationError(
            "The image is too large (%(size)d KiB); the limit is %(limit)d KiB.",
            code="avatar_too_large",
            params={"size": upload.size // 1024, "limit": config.AVATAR_MAX_KB},
        )
    try:
        upload.seek(0)
        with Image.open(upload) as image:
            fmt = image.format
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValidationError("Upload a valid image (PNG, JPEG, WebP or GIF).", code="avatar_invalid") from exc
    finally:
        upload.seek(0)
    if fmt not in AVATAR_CONTENT_TYPES:
        raise ValidationError("Upload a PNG, JPEG, WebP or GIF image.", code="avatar_type")
    return AVATAR_EXTENSIONS[fmt]
