"""The collector in a long-running runtime process (brain, gateway).

By the time a process serves, start-up has allocated some 10^5 objects that live as long as it does:
imports, compiled kernels, loaded models. Python's cyclic collector walks them all at every full
collection — 17 ms in a brain here, a request-sized stall at a random moment — and part of them at
every middle one. ``settle`` collects once and then freezes that heap (``gc.freeze``): later
collections walk only what the serving loop itself allocated (a full one then takes < 1 ms).
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Collect, then move every surviving object out of the collector's reach (call once, after start-up)."""
    gc.collect()
    gc.freeze()
