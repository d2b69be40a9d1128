"""The real ``tushare`` client, made safe to run unattended.

* Rate limit: a token bucket shared by all calls, sized so that no 60-second window holds more
  than ``calls_per_min`` calls.
* Retries with exponential backoff on transient failures: the service's rate-limit reply, a
  non-2xx HTTP reply (the client then returns a DataFrame with no columns), a connection error.
* Tushare's own refusals (invalid token, no permission) fail at once with one clear line.
* The base URL is the client's private ``_DataApi__http_url``; ``HEQIS_TUSHARE_URL`` overrides it
  for mirrors and for the tests' local server.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pandas as pd

from heqis.errors import HeqisError

log = logging.getLogger(__name__)

MSG_TOKEN = "TOKEN无效"
MSG_PERMISSION = "没有访问该接口的权限"
MSG_RATE = "最多访问该接口"


class TokenBucket:
    """Allows ``per_minute`` calls in any 60 s: capacity 10% of that, refilled at 90% of the rate."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.capacity = max(1.0, per_minute * 0.1)
        self.rate = max(per_minute * 0.9, 1.0) / 60.0
        self.tokens = self.capacity
        self.clock = clock
        self.sleep = sleep
        self.stamp = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, sleeping until one is there; returns the seconds waited."""
        with self._lock:
            now = self.clock()
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return 0.0
            need = (1.0 - self.tokens) / self.rate
            self.sleep(need)
            # the token that accrued while sleeping is the one taken now (oversleeping is not credited)
            self.stamp = self.clock()
            self.tokens = 0.0
            return need


class TransientError(Exception):
    """A failure worth retrying."""


class TushareApi:
    """``query(api_name, fields, **params)`` over the real client, with rate limit and retries."""

    def __init__(self, token: str, url: str | None = None, timeout_s: float = 30.0, calls_per_min: int = 400,
                 retries: int = 5, backoff_s: float = 2.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        import tushare as ts  # heavy import (requests, bs4, lxml), only for this source

        self.pro = ts.pro_api(token=token, timeout=timeout_s)
        if url:
            self.pro._DataApi__http_url = url.rstrip("/")
        self.url = getattr(self.pro, "_DataApi__http_url", "")
        self.bucket = TokenBucket(calls_per_min, sleep=sleep)
        self.retries = retries
        self.backoff_s = backoff_s
        self.sleep = sleep
        self.retried = 0

    def query(self, api_name: str, fields: str = "", **params: object) -> pd.DataFrame:
        import requests

        what = f"Tushare {api_name}" + (f" {params['ts_code']}" if params.get("ts_code") else "")
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self.retried += 1
                delay = min(self.backoff_s * 2 ** (attempt - 1), 60.0)
                log.warning("%s: %s; retry %d/%d in %.1f s", what, last, attempt, self.retries, delay)
                self.sleep(delay)
            self.bucket.acquire()
            try:
                df = self.pro.query(api_name, fields=fields, **params)
            except requests.RequestException as exc:
                last = f"cannot reach {self.url} ({type(exc).__name__})"
                continue
            except Exception as exc:  # the client raises a bare Exception carrying Tushare's msg
                msg = str(exc)
                if MSG_TOKEN in msg:
                    raise HeqisError(f"{what}: token rejected by Tushare ({msg})",
                                     hint="check HEQIS_TUSHARE_TOKEN or your token file") from None
                if MSG_PERMISSION in msg:
                    raise HeqisError(f"{what}: your Tushare account may not use '{api_name}' ({msg})",
                                     hint="it needs more Tushare points: tushare.pro/document/1?doc_id=108") from None
                if MSG_RATE in msg:
                    last = f"rate limited by Tushare ({msg})"
                    continue
                if isinstance(exc, ValueError | KeyError):  # unreadable reply body
                    last = f"unreadable reply from {self.url}"
                    continue
                raise HeqisError(f"{what}: Tushare error: {msg}") from None
            if len(df.columns) == 0:  # the client's answer to a non-2xx HTTP reply
                last = f"HTTP error from {self.url} (no table in the reply)"
                continue
            return df
        raise HeqisError(f"{what}: {last}; gave up after {self.retries} retries",
                         hint="re-run the same command to resume; finished ranges are kept")
