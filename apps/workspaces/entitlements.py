"""What a workspace's plan lets it do, as a value the lower layers read without knowing about
plans: billing (which owns plans) computes it and pushes it onto `WorkspaceEntitlements` rows
(`workspace_entitlements_set`); media, API keys, rate limits and the workspace limits read it
through `apps.workspaces.selectors.workspace_entitlements`."""

from __future__ import annotations

from dataclasses import dataclass, field

MB = 1024 * 1024


@dataclass(frozen=True)
class Entitlements:
    """`plan_code` None: no plan at all (a fresh install before billing is set up), so every gate
    is open and the limits are the site defaults. A None limit is the site default too."""

    plan_code: str | None
    plan_name: str
    voice_cloning: bool = True
    api_access: bool = True
    max_workspaces: int | None = None
    max_members: int | None = None
    max_documents: int | None = None
    storage_bytes: int | None = None
    upload_max_bytes: int | None = None
    result_retention_days: int | None = None
    rate_limits: dict[str, int] = field(default_factory=dict)


OPEN = Entitlements(plan_code=None, plan_name="")
