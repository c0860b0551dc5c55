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
    job (GenerationJob): the finished job (read it, never change it): `workspace_id`, `kind`
        (the `JobKind` value: image, speech, transcription, voice_clone), `user_id` (who asked
        for it, if anyone), `api_key_id` (the API key it came through, if any),
        `credits_charged_units` (credits charged, in units of 1/10,000).
"""
