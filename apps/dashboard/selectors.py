"""Reads behind the dashboard. Each is a bounded number of queries whatever the workspace
holds (the page's test pins the total), and each reads through the workspace it is given."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Exists, OuterRef
from django.urls import reverse
from django.utils import timezone

from apps.apikeys.models import ApiKey
from apps.billing.entitlements import plan_for
from apps.billing.selectors import account_of, billing_state
from apps.chat.models import Conversation, Message
from apps.chat.selectors import ConversationFilters, conversation_list
from apps.credits.selectors import UsageFilters, usage_queryset, usage_totals_by_day
from apps.dashboard.sparkline import Sparkline, sparkline
from apps.media.models import GenerationJob, JobKind
from apps.media.selectors import job_list
from apps.workspaces.models import Invitation, Membership, Workspace
from apps.workspaces.roles import Perm

RECENT_LIMIT = 5
USAGE_DAYS = 30

# The studio page that shows a job of each kind (`?job=<id>`).
JOB_PAGES = {
    JobKind.IMAGE.value: "media:images",
    JobKind.SPEECH.value: "media:speech",
    JobKind.TRANSCRIPTION.value: "media:transcribe",
    JobKind.VOICE_CLONE.value: "media:voices",
}


# ---------------------------------------------------------------------------- onboarding


@dataclass(frozen=True)
class ChecklistItem:
    key: str
    label: str
    done: bool
    url: str
    action: str  # the link's words while the step is open
    allowed: bool  # the member's role lets them do it (else an admin must)


def onboarding_checklist(*, workspace: Workspace, membership: Membership) -> list[ChecklistItem]:
    """The first steps of a new workspace, each ticked from what exists (one query): a chat
    with a message sent, a teammate (another member, or an invitation sent), an API key."""
    others = Membership.objects.filter(workspace=OuterRef("pk")).exclude(user_id=membership.user_id)
    flags = (
        Workspace.objects.filter(pk=workspace.pk)
        .annotate(
            has_chat=Exists(
                Message.objects.filter(workspace=OuterRef("pk"), role=Message.Role.USER),
            ),
            has_teammate=Exists(others),
            has_invitation=Exists(Invitation.objects.filter(workspace=OuterRef("pk"))),
            has_key=Exists(ApiKey.objects.filter(workspace=OuterRef("pk"))),
        )
        .values("has_chat", "has_teammate", "has_invitation", "has_key")
        .get()
    )
    return [
        ChecklistItem(
            key="chat",
            label="Send your first chat message",
            done=flags["has_chat"],
            url=reverse("chat:list"),
            action="Start a chat",
            allowed=membership.has_perm(Perm.USE),
        ),
        ChecklistItem(
            key="invite",
            label="Invite a teammate",
            done=flags["has_teammate"] or flags["has_invitation"],
            url=reverse("workspaces:members"),
            action="Invite someone",
            allowed=membership.has_perm(Perm.MANAGE_MEMBERS),
        ),
        ChecklistItem(
            key="apikey",
            label="Create an API key",
            done=flags["has_key"],
            url=reverse("apikeys:list"),
            action="Create a key",
            allowed=membership.has_perm(Perm.MANAGE_SETTINGS),
        ),
    ]


# ---------------------------------------------------------------------------- recent work


def recent_conversations(*, workspace: Workspace, limit: int = RECENT_LIMIT) -> list[Conversation]:
    return list(conversation_list(workspace=workspace, filters=ConversationFilters())[:limit])


@dataclass(frozen=True)
class RecentJob:
    job: GenerationJob
    url: str
    summary: str  # what was asked: the prompt, the text read aloud, the voice's name


def _job_summary(job: GenerationJob) -> str:
    params = job.parameters if isinstance(job.parameters, dict) else {}
    for key in ("prompt", "text", "name"):
        if isinstance(params.get(key), str) and params[key].strip():
            return str(params[key]).strip()
    return ""


def recent_jobs(*, workspace: Workspace, limit: int = RECENT_LIMIT) -> list[RecentJob]:
    """The workspace's latest studio jobs, each with the link to the page that shows it."""
    jobs = job_list(workspace=workspace).only(
        "id", "workspace_id", "kind", "model_label", "status", "created_at", "parameters"
    )[:limit]
    return [
        RecentJob(job=job, url=f"{reverse(JOB_PAGES[job.kind])}?job={job.pk}", summary=_job_summary(job))
        for job in jobs
    ]


# ---------------------------------------------------------------------------- credits and plan


def usage_sparkline(*, workspace: Workspace, days: int = USAGE_DAYS) -> Sparkline:
    """Credits charged per day over the last `days` days, days in the user's time zone (one query)."""
    end = timezone.localdate()
    start = end - timedelta(days=days - 1)
    totals = usage_totals_by_day(usage_queryset(workspace=workspace, filters=UsageFilters(start=start)))
    return sparkline({row["day"]: int(row["units"] or 0) for row in totals}, end=end, days=days)


@dataclass(frozen=True)
class PlanSummary:
    name: str
    status: str  # a short state ("Free", "Trial", "Active", "Past due"…)
    explanation: str
    is_free: bool


def plan_summary(*, workspace: Workspace) -> PlanSummary:
    plan = plan_for(workspace)
    state = billing_state(account_of(workspace), plan)
    return PlanSummary(
        name=plan.name if plan is not None else "No plan",
        status=state.label,
        explanation=state.explanation,
        is_free=plan is None or plan.is_free,
    )
