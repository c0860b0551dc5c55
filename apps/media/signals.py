"""What media announces, with `sender=GenerationJob`. Sent on commit
(`apps.core.events.send_on_commit`): a receiver never hears of a job whose success was rolled
back.
"""

from __future__ import annotations

from django.dispatch import Signal

job_completed = Signal()
"""A media job finished successfully: its results are stored and its credits charged, once.
Not sent for a job that failed, was cancelled, or was taken over by another worker.

Keyword arguments:
    workspace_id (int): the job's workspace.
    job_id (int): the `GenerationJob`.
    kind (str): the `JobKind` value (image, speech, transcription, voice_clone).
    user_id (int | None): who asked for it, if anyone.
    api_key_id (int | None): the API key it came through, if any.
    credits_charged_units (int): credits charged, in units of 1/10,000.
"""
