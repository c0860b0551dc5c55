"""Site-wide rate limit defaults, until the CONSTANCE_CONFIG entries exist.

The keys are the constance names; each maps to the `WorkspaceRateLimit` field of the same name
in lower case without the prefix (`RATE_LIMIT_KEY_RPM` -> `key_rpm`). 0 means unlimited.
"""

from __future__ import annotations

# name: (default, help text) — the help text is what the admin's Config page should show.
RATE_LIMIT_SETTINGS: dict[str, tuple[int, str]] = {
    "RATE_LIMIT_KEY_RPM": (60, "Requests per minute for one API key (0: unlimited)."),
    "RATE_LIMIT_KEY_TPM": (200_000, "Tokens per minute for one API key (0: unlimited)."),
    "RATE_LIMIT_USER_RPM": (60, "Requests per minute for one member of a workspace (0: unlimited)."),
    "RATE_LIMIT_USER_TPM": (200_000, "Tokens per minute for one member of a workspace (0: unlimited)."),
    "RATE_LIMIT_WORKSPACE_RPM": (600, "Requests per minute for a whole workspace (0: unlimited)."),
    "RATE_LIMIT_WORKSPACE_TPM": (2_000_000, "Tokens per minute for a whole workspace (0: unlimited)."),
}

DEFAULTS: dict[str, int] = {name: default for name, (default, _help) in RATE_LIMIT_SETTINGS.items()}

# The six limits, named like the `WorkspaceRateLimit` fields.
LIMIT_FIELDS: tuple[str, ...] = ("key_rpm", "key_tpm", "user_rpm", "user_tpm", "workspace_rpm", "workspace_tpm")


def setting_name(field: str) -> str:
    """`key_rpm` -> `RATE_LIMIT_KEY_RPM`."""
    return f"RATE_LIMIT_{field.upper()}"
