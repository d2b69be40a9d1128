"""Rate-limited warnings for input that arrives over a socket (docs/architecture.md, "Invariants").

A peer that sends 100,000 bad messages must not write 100,000 log lines: that is megabytes of log
and, worse, a stall long enough for a healthy brain to be declared dead. The first occurrence of a
reason is logged at once (so a misconfiguration is visible immediately); after that, at most one
line per ``every_s`` seconds sums up what was dropped since, by reason. Counting is exact either way
(the counters in status), only the logging is thinned.
"""

from __future__ import annotations

import logging
import time
from collections import Counter


class RateLimitedLog:
    def __init__(self, logger: logging.Logger, who: str, every_s: float = 5.0) -> None:
        self.logger, self.who, self.every_s = logger, who, every_s
        self.seen: set[str] = set()
        self.since: Counter[str] = Counter()
        self.next_line = 0.0

    def warn(self, reason: str, detail: str) -> None:
        now = time.monotonic()
        if reason not in self.seen:
            self.seen.add(reason)
            self.logger.warning("%s: %s (%s); further ones are summed up every %.0f s", self.who, detail, reason,
                                self.every_s)
            self.next_line = max(self.next_line, now + self.every_s)
            return
        self.since[reason] += 1
        if now >= self.next_line:
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        if self.since:
            summary = ", ".join(f"{k} {v}" for k, v in self.since.most_common())
            self.logger.warning("%s: dropped %d more in the last %.0f s: %s", self.who, sum(self.since.values()),
                                self.every_s, summary)
            self.since.clear()
        self.next_line = (time.monotonic() if now is None else now) + self.every_s
