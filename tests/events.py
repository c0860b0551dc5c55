"""Hearing domain events in tests: `with listening(order_paid) as heard:` records every send of
the signals, with its sender and keyword arguments, until the block ends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.dispatch import Signal


class Boom(Exception):
    """Raised by a test to roll a transaction back."""


def testcase_atomic() -> transaction.Atomic:
    """A transaction a test opens around the code under test, marked like the test case's own
    (as Django's `TestCase` marks its): a durable service inside it is still the outermost
    transaction of the code under test, and a helper's joins it."""
    atomic = transaction.atomic()
    atomic._from_testcase = True  # type: ignore[attr-defined]  # real Django attribute, absent from django-stubs
    return atomic


def rolled_back(work: Callable[[], object]) -> None:
    """Do `work` in a transaction that is then rolled back (as a failure after it would)."""
    with suppress(Boom), testcase_atomic():
        work()
        raise Boom


@dataclass
class Heard:
    sends: list[tuple[Signal, Any, dict[str, Any]]] = field(default_factory=list)

    def of(self, signal: Signal) -> list[dict[str, Any]]:
        """The keyword arguments of each send of `signal`, in order."""
        return [kwargs for sent, _, kwargs in self.sends if sent is signal]

    def rows(self, signal: Signal, payload: str, *fields: str) -> list[tuple[Any, ...]]:
        """For each send of `signal`, the named `fields` of the row it carried as `payload`
        (pretix-style events carry the committed row: `heard.rows(grant_added, "grant", "pk")`)."""
        return [tuple(getattr(kwargs[payload], name) for name in fields) for kwargs in self.of(signal)]

    def senders(self, signal: Signal) -> list[Any]:
        return [sender for sent, sender, _ in self.sends if sent is signal]


@contextmanager
def listening(*signals: Signal) -> Iterator[Heard]:
    heard = Heard()

    def record(sender: Any, signal: Signal, **kwargs: Any) -> None:
        heard.sends.append((signal, sender, kwargs))

    uid = f"tests.events.listening:{id(heard)}"
    for signal in signals:
        signal.connect(record, weak=False, dispatch_uid=uid)
    try:
        yield heard
    finally:
        for signal in signals:
            signal.disconnect(dispatch_uid=uid)
