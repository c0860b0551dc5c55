"""Sending domain events. Each app documents its events in `apps/<app>/signals.py`; a higher
app listens (receivers connected in its `AppConfig.ready`) and enqueues its own work. A lower
app announces what happened and never imports the apps that listen.

Two kinds of event:

- **on commit** (the default, pretix's `order_paid`): sent once the transaction that made the
  fact commits, so a receiver never sees a fact that was rolled back. A receiver that fails is
  logged and does not affect the others (or the caller, whose work is already committed).
  Outside a transaction it is sent at once.
- **in transaction**, for work that must be atomic with the row that announces it (a new
  user's personal workspace): sent synchronously inside the sender's transaction; a receiver's
  error rolls the whole change back. Such signals say so in their docstring.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from django.db import transaction
from django.dispatch import Signal


def send_on_commit(signal: Signal, *, sender: Any, **kwargs: Any) -> None:
    """Send `signal` with `kwargs` once the current transaction commits (never if it rolls back)."""
    transaction.on_commit(partial(signal.send_robust, sender=sender, **kwargs))
