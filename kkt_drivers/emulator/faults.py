"""Fault injection for the emulated register, configured from the register URL's query.

Each fault is named; its value is either a probability (``0.05``) or ``first:N`` (fire on the
first N opportunities in this process, then never — "fails, then recovers")::

    emulator:///tmp/reg?fail_before_send=first:2&lose_reply_after_close=0.05&seed=7

| name                     | where it fires                         | what the caller sees          |
|--------------------------|----------------------------------------|-------------------------------|
| fail_before_send         | before the receipt reaches the register | TransientError                |
| lose_reply_after_close   | the close worked, the answer is lost    | OutcomeUnknownError           |
| lose_reply_before_close  | the close never arrived (receipt open)  | OutcomeUnknownError           |
| paper_out_mid_receipt    | while items are added                   | DeviceStateError(paper_out)   |
| fn_error                 | at close, nothing fiscalized            | DeviceStateError(fn_error)    |
| marking_invalid          | ОИСМ answers a code check negatively    | RejectedError (declined code) |
| marking_late             | ОИСМ's answer does not come in time     | DeviceStateError(marking_check_timeout) |
| marking_bad_answer       | the FN finds ОИСМ's answer invalid      | DeviceStateError(marking_check_timeout) |

``latency_ms`` (every command sleeps that long) is not random. Unknown names are refused.

Not a URL fault but a state of the register: :meth:`RegisterModel.tamper_counter` (``kkt-worker
emulator tamper-counter DIR sale 1.00``) makes the register's OWN shift counters drift from its
documents — kept in ``state.json``, so every process and wire emulator on that register sees it.
"""
from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

FAULT_NAMES = (
    "fail_before_send",
    "lose_reply_after_close",
    "lose_reply_before_close",
    "paper_out_mid_receipt",
    "fn_error",
    "marking_invalid",
    "marking_late",
    "marking_bad_answer",
)


@dataclass
class _Rule:
    probability: float = 0.0
    first: int = 0
    seen: int = 0


@dataclass
class Faults:
    """A set of armed faults with its own seeded random source; counts what fired."""

    rules: dict[str, _Rule] = field(default_factory=dict)
    seed: int | None = None
    fired: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    @classmethod
    def parse(cls, options: dict[str, str], seed: int | None = None) -> "Faults":
        """Build from ``name -> "0.1" | "first:N"``; ValueError names a bad option."""
        rules: dict[str, _Rule] = {}
        for name, raw in options.items():
            if name not in FAULT_NAMES:
                raise ValueError(f"unknown fault {name!r} (known: {', '.join(FAULT_NAMES)})")
            if raw.startswith("first:"):
                rules[name] = _Rule(first=int(raw[6:]))
            else:
                p = float(raw)  # a probability, not money
                if not 0.0 <= p <= 1.0:
                    raise ValueError(f"fault {name!r}: probability must be within 0..1, got {raw}")
                rules[name] = _Rule(probability=p)
        return cls(rules=rules, seed=seed)

    def fire(self, name: str) -> bool:
        """Whether fault *name* happens at this opportunity."""
        rule = self.rules.get(name)
        if rule is None:
            return False
        with self._lock:
            rule.seen += 1
            hit = rule.seen <= rule.first or (rule.probability > 0 and self._rng.random() < rule.probability)
            if hit:
                self.fired[name] = self.fired.get(name, 0) + 1
            return hit
