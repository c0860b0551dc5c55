"""Encryption at rest for provider credentials entered in the admin (Fernet, AES-128-CBC +
HMAC). The key comes from FIELD_ENCRYPTION_KEY, or is derived from SECRET_KEY when unset, so
rotating either makes stored keys unreadable (re-enter them in the admin)."""

from __future__ import annotations

import base64
import hashlib

from django.conf import settings


def _fernet():
    from cryptography.fernet import Fernet

    secret = getattr(settings, "FIELD_ENCRYPTION_KEY", "") or settings.SECRET_KEY
    key = base64.urlsafe_b64encode(hashlib.sha256(f"aikeedo-credentials:{secret}".encode()).digest())
    return Fernet(key)


def encrypt(plaintext: str) -> str:
    if not plaintext:
        return ""
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    if not token:
        return ""
    from cryptography.fernet import InvalidToken

    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        return ""


def mask(secret: str) -> str:
    """What the admin shows of a stored key: never more than its last four characters."""
    if not secret:
        return ""
    return "••••" + secret[-4:] if len(secret) > 8 else "••••"
