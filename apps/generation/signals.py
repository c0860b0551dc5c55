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
    generation (Generation): the usage row, final (pretix's `order=`: read it, never change
        it): `workspace_id` (the workspace charged), `outcome` (the `Generation.Outcome`
        value), `capability`, `model_label` (the catalog model asked for; a fallback may have
        answered: `upstream_model`), `credits_charged_units` (units of 1/10,000; 0 when
        nothing was charged), `input_tokens` and `output_tokens` (the usage charged for),
        `user_id` (the member who made the call, if any), `api_key_id` (the API key it came
        through, if any), `reference` (the chat message or media job it was for).
"""
