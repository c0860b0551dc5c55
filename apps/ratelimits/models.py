from __future__ import annotations

from django.db import models

_HELP = "Empty: the site default (Config → Rate limits). 0: unlimited."


class WorkspaceRateLimit(models.Model):
    """One workspace's own limits, overriding the site defaults field by field (null: keep
    the default). An API key's own `rpm_limit`/`tpm_limit` still win for that key."""

    workspace = models.OneToOneField("workspaces.Workspace", on_delete=models.CASCADE, related_name="rate_limit")
    key_rpm = models.PositiveIntegerField("per key: requests/min", null=True, blank=True, help_text=_HELP)
    key_tpm = models.PositiveIntegerField("per key: tokens/min", null=True, blank=True, help_text=_HELP)
    user_rpm = models.PositiveIntegerField("per member: requests/min", null=True, blank=True, help_text=_HELP)
    user_tpm = models.PositiveIntegerField("per member: tokens/min", null=True, blank=True, help_text=_HELP)
    workspace_rpm = models.PositiveIntegerField("workspace: requests/min", null=True, blank=True, help_text=_HELP)
    workspace_tpm = models.PositiveIntegerField("workspace: tokens/min", null=True, blank=True, help_text=_HELP)
    note = models.CharField(max_length=255, blank=True, help_text="Why this workspace has its own limits.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "workspace rate limit"
        verbose_name_plural = "workspace rate limits"

    def __str__(self) -> str:
        return f"Rate limits of {self.workspace}"
