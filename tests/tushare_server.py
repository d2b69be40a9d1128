"""A local HTTP server that speaks Tushare Pro's wire format, for the real ``tushare`` client.

The client POSTs ``{api_name, token, params, fields}`` as JSON to ``<base>/<api_name>`` and
expects ``{code, msg, data: {fields, items}}``. Data come from a ``TableApi`` (newest first, row
caps), and the server can be told to refuse: an invalid token, APIs without permission, rate-limit
replies, HTTP 500s; every request is logged so tests can check what was (not) asked for.
The error texts are Tushare's own.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from heqis.data.sources.tables import TableApi

DEFAULT_PORT = 9765  # out of the way of the gateway's ports (5555-5561, 8765)

TOKEN_INVALID = "抱歉，您输入的TOKEN无效！"
NO_PERMISSION = "抱歉，您没有访问该接口的权限，权限的具体详情访问：https://tushare.pro/document/1?doc_id=108。"
RATE_LIMITED = "抱歉，您每分钟最多访问该接口500次，权限的具体详情访问：https://tushare.pro/document/1?doc_id=108。"


@dataclass
class Behaviour:
    """What the server does besides answering."""

    token: str = "test-token"
    forbidden: set[str] = field(default_factory=set)          # APIs answered with "no permission"
    rate_limit_next: dict[str, int] = field(default_factory=dict)  # api → how many rate-limit replies first
    http_500_next: dict[str, int] = field(default_factory=dict)    # api → how many HTTP 500 replies first
    fail_after: int | None = None   # after this many successful data replies, answer every call with 500


@dataclass
class Request:
    api_name: str
    params: dict
    fields: str
    status: str  # ok | token | permission | rate | http500


class TushareHandler(BaseHTTPRequestHandler):
    server: TushareHTTPServer

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass

    def _send(self, status: int, payload: dict | None) -> None:
        body = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        srv = self.server
        length = int(self.headers.get("Content-Length", "0"))
        req = json.loads(self.rfile.read(length) or b"{}")
        api = self.path.strip("/").split("/")[-1] or req.get("api_name", "")
        params = dict(req.get("params") or {})
        params.pop("ts_type_name", None)  # the client adds its own base URL here
        b = srv.behaviour
        with srv.lock:
            if b.fail_after is not None and srv.ok_replies >= b.fail_after:
                status = "http500"
            elif b.http_500_next.get(api, 0) > 0:
                b.http_500_next[api] -= 1
                status = "http500"
            elif req.get("token") != b.token:
                status = "token"
            elif api in b.forbidden:
                status = "permission"
            elif b.rate_limit_next.get(api, 0) > 0:
                b.rate_limit_next[api] -= 1
                status = "rate"
            else:
                status = "ok"
                srv.ok_replies += 1
            srv.requests.append(Request(api, params, req.get("fields", ""), status))
        if status == "http500":
            self._send(500, {"error": "internal"})
            return
        if status == "token":
            self._send(200, {"code": 40101, "msg": TOKEN_INVALID, "data": None})
            return
        if status == "permission":
            self._send(200, {"code": 40203, "msg": NO_PERMISSION, "data": None})
            return
        if status == "rate":
            self._send(200, {"code": 40203, "msg": RATE_LIMITED, "data": None})
            return
        df = srv.tables.query(api, fields=req.get("fields", ""), **params)
        items = [[None if isinstance(v, float) and math.isnan(v) else v for v in row]
                 for row in df.astype(object).itertuples(index=False, name=None)]
        self._send(200, {"request_id": "test", "code": 0, "msg": "",
                         "data": {"fields": list(df.columns), "items": items, "has_more": False}})


class TushareHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, tables: TableApi, behaviour: Behaviour, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), TushareHandler)
        self.tables = tables
        self.behaviour = behaviour
        self.requests: list[Request] = []
        self.ok_replies = 0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def calls(self, api: str | None = None, status: str | None = None) -> list[Request]:
        return [r for r in self.requests if (api is None or r.api_name == api)
                and (status is None or r.status == status)]


@contextmanager
def serve(tables: TableApi, behaviour: Behaviour | None = None) -> Iterator[TushareHTTPServer]:
    srv = TushareHTTPServer(tables, behaviour or Behaviour())
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def main() -> None:
    """Serve the sample market over Tushare's wire format, to try ``heqis data -s tushare`` offline."""
    import argparse

    from heqis.data.sources.sample import sample_api
    from heqis.data.watchlist import default_watchlist_text, parse_watchlist

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--port", type=int, default=DEFAULT_PORT)
    ap.add_argument("--token", default="test-token")
    args = ap.parse_args()
    srv = TushareHTTPServer(sample_api(parse_watchlist(default_watchlist_text())), Behaviour(token=args.token),
                            args.port)
    print(f"serving the synthetic sample market as Tushare Pro on {srv.url} (token: {args.token}); Ctrl-C stops",
          flush=True)
    with suppress(KeyboardInterrupt):
        srv.serve_forever()


if __name__ == "__main__":
    main()
