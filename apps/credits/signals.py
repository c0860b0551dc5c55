"""What the credits ledger announces. Every signal here is sent on commit
(`apps.core.events.send_on_commit`) with `sender=CreditAccount`: a receiver never hears of a
charge, grant or crossing that was rolled back. Receivers only enqueue work or call one service;
the ledger never waits for them. The payload is the committed row (pretix's `order=`): a
receiver reads it and never changes it.
"""

from __future__ import annotations

from django.dispatch import Signal

LOW_BALANCE = "low_balance"

charge_settled = Signal()
"""A reservation was settled: its actual cost was charged, once.

Sent when `credits_settle` (or the sweeper, for what a dead caller checkpointed) moves a held
reservation to settled; a replayed settle, and a release, send nothing.

Keyword arguments:
    reservation (Reservation): the settled reservation: `workspace_id` (the workspace
        charged), `charged_units` (credits charged, in units of 1/10,000; 0 for a free call),
        `idempotency_key` (as the caller chose it), `service` and `model` (what was used; may
        be empty), `user_id` (the member who made the call, if any).
"""

balance_crossed_level = Signal()
"""A change took a workspace's available balance from at or above a watched level to below it.

Levels are the workspace's low-balance alert thresholds (`watch="low_balance"`: sent only for
spending — a hold, a charge, a clawback — once per crossing until credits added lift the
balance above the threshold again, with the lowest threshold crossed) and the levels higher
apps registered with `credits_watch_set` (`watch` is the name they chose, e.g. billing's
`"auto_topup"`; sent for every downward crossing, whatever caused it).

Keyword arguments:
    account (CreditAccount): the workspace's account (`workspace_id`), as the change left it.
    watch (str): `"low_balance"` or the registered name.
    level_units (int): the level crossed, in units.
    available_units (int): the available balance right after the change, in units.
"""

grant_added = Signal()
"""Credits were added as a new grant: bought, granted by a plan or a trial, given by staff,
refunded. A replayed grant sends nothing.

Keyword arguments:
    grant (CreditGrant): the new grant: `workspace_id` (the workspace credited),
        `amount_units` (credits added, in units), `source` (the `Source` value: trial,
        subscription, bonus, purchased), `reference` (the invoice, checkout or promotion that
        produced it; may be empty).
"""
