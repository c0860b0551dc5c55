"""What the accounts domain announces, with `sender=User`. Sent on commit
(`apps.core.events.send_on_commit`) unless the docstring says "in transaction": those are sent
synchronously inside the account's own transaction, for work that must be atomic with the user
row; a receiver's error there rolls the whole change back.
"""

from __future__ import annotations

from django.dispatch import Signal

user_created = Signal()
"""In transaction. A person's account was just created — sign-up (email or a social provider),
`user_create` (seed data, tooling, tests) or staff adding a user in the admin — and what every
person has must be created with it (workspaces makes the personal workspace). Sent once per
user, before the transaction commits.

Keyword arguments:
    user (User): the new user.
    method (str): "email", the social provider's id ("google", …), "created" (`user_create`)
        or "staff" (added in the admin).
"""

user_signed_up = Signal()
"""A person signed up: by the sign-up form, a social provider, or `user_create`. Sent on commit,
once per user; not sent for users staff add in the admin.

Keyword arguments:
    user (User): the new user.
    method (str): "email", the social provider's id, or "created".
"""

user_deleting = Signal()
"""In transaction. A user's account is about to be deleted (by themselves or by staff): the row
still exists, so receivers can find what was theirs (workspaces deletes the ones they solely
own). Sent inside `user_delete`'s transaction, before the row goes.

Keyword arguments:
    user (User): the user being deleted.
    acting_user (User): who deletes it (the user, or a staff member).
"""
