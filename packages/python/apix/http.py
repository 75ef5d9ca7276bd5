"""HTTP publish and history with urllib (standard library), run in a thread so the event loop goes on."""
from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from .errors import ApiXError, error_from_wire


def _request(method: str, url: str, token: str, body: Any = None, timeout: float = 10.0,
             headers: dict[str, str] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, method=method, data=data, headers={
        "authorization": f"Bearer {token}", "content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            return json.load(res)
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = {"code": "INTERNAL", "message": raw.decode(errors="replace") or str(err)}
        status_code = {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND",
                       409: "CONFLICT", 413: "PAYLOAD_TOO_LARGE", 429: "RATE_LIMITED",
                       503: "UNAVAILABLE"}.get(err.code, "INTERNAL")
        if not isinstance(parsed, dict):
            parsed = {"message": str(parsed)}
        raise error_from_wire(parsed, status_code) from None
    except (urllib.error.URLError, OSError) as err:
        raise ApiXError(f"{method} {url}: {err}", code="UNAVAILABLE") from err


class HttpApi:
    """`POST /v1/publish` and `GET /v1/channels/<channel>/history` (docs/protocol.md §9)."""

    def __init__(self, base_url: str, token_source) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token_source  # async () -> str

    async def publish(self, channel: str, type: str, payload: Any, *, idempotency_key: str | None = None,
                      metadata: dict | None = None, traceparent: str | None = None) -> str:
        meta = dict(metadata or {})
        if idempotency_key is not None:
            meta["idempotency_key"] = idempotency_key
        body: dict[str, Any] = {"channel": channel, "type": type, "payload": payload}
        if meta:
            body["metadata"] = meta
        headers = {"traceparent": traceparent} if traceparent else None
        token = await self._token()
        res = await asyncio.to_thread(_request, "POST", f"{self.base_url}/v1/publish", token, body, 10.0, headers)
        return res["id"]

    async def history(self, channel: str, *, since: str | None = None, limit: int | None = None) -> dict:
        """One page: `{events, recovered, hasMore, next?, streams?}`."""
        query = {k: v for k, v in (("since", since), ("limit", limit)) if v is not None}
        url = f"{self.base_url}/v1/channels/{urllib.parse.quote(channel, safe=':')}/history"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        token = await self._token()
        return await asyncio.to_thread(_request, "GET", url, token)

    async def history_all(self, channel: str, *, since: str | None = None) -> list[dict]:
        """Every retained event after `since`, following `next` until `hasMore` is false."""
        events: list[dict] = []
        while True:
            page = await self.history(channel, since=since)
            events.extend(page["events"])
            if not page.get("hasMore"):
                return events
            since = page["next"]
