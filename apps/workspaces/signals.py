"""What the workspaces domain announces, with `sender=Workspace`. Sent on commit
(`apps.core.events.send_on_commit`) unless the docstring says "in transaction": those are sent
synchronously inside the sender's transaction, for work that must exist whenever the workspace
does; a receiver's error there rolls the workspace back.
"""

from __future__ import annotations

from django.dispatch import Signal

workspace_created = Signal()
"""In transaction. A workspace and its owner's membership were just created (`workspace_create`,
including each person's personal workspace at sign-up), before the transaction commits.

Receivers must keep to work that belongs with the workspace row (credits opens its account and
grants a personal workspace's trial; billing grants the default plan's credits for the month);
anything slow or external belongs on commit.

Keyword arguments:
    workspace (Workspace): the new workspace.
    user (User): its creator, now its owner.
    is_personal (bool): whether it is the person's personal (first) workspace.
"""

member_joined = Signal()
"""Someone became a member of a workspace: an invitation accepted by a new member. Sent on
commit; not sent when the person already belonged to the workspace, nor for the owner of a new
workspace (see `workspace_created`).

Keyword arguments:
    membership (Membership): the new membership (`workspace_id`, `user_id`, `role`).
    invitation (Invitation): the invitation accepted.
"""
