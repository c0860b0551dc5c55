"""What the generation engine announces, with `sender=Generation`. Sent on commit
(`apps.core.events.send_on_commit`): a receiver never hears of a usage row that was rolled back.
The engine's steps run outside transactions (no transaction is held while a provider answers),
so in practice the signal goes out as soon as the row is written.
"""

from __future__ import annotations

from django.dispatch import Signal

generation_completed = Signal()
"""A generation's usage row (`Generation`) got its final outcome; sent once per row, whatever
the outcome:

- a chat answer (the pages, the sockets, `/v1/chat/completions`, titles) ended: `ok`,
  `stopped`, `client_gone` or `error` — its hold settled for what was delivered, or released;
- it was refused before any call (model not usable, credits, spending cap): `refused`;
- an embeddings call ended: `ok` or `error`;
- its worker died and `generation_sweep` closed the row: `interrupted`.

A second ending of the same row (a stream finishing after the sweeper closed its row, a
replayed settlement) sends nothing.

Keyword arguments:
    workspace_id (int): the workspace charged.
    generation_id (int): the `Generation` row.
    outcome (str): the `Generation.Outcome` value.
    model_id (str): the catalog model asked for (`AIModel.model_id`); a fallback may have
        answered (the row's `upstream_model`).
    credits_charged_units (int): credits charged, in units of 1/10,000 (0 when nothing was).
    input_tokens (int), output_tokens (int): the usage charged for (0 when nothing was).
    user_id (int | None): the member who made the call, if any.
    api_key_id (int | None): the API key it came through, if any.
"""
