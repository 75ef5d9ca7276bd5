"""The asyncio client: connect (with a token provider and refresh), subscribe with handlers, acks,
`since`/resume and per-channel dedupe, publish with idempotency keys, streams; reconnects with backoff
and full jitter, resuming its session (docs/protocol.md §12)."""
from __future__ import annotations

import asyncio
import base64
import inspect
import itertools
import json
import logging
import random
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import websockets

from .errors import (ApiXError, ApiXTimeoutError, UnavailableError, close_code_allows_reconnect,
                     error_from_wire)
from .http import HttpApi
from .streams import StreamPublisher, StreamState

TokenSource = str | Callable[[], str | Awaitable[str]]
log = logging.getLogger("apix")
HANDLED_IDS_KEPT = 10_000
REPLY_TYPES = ("message.sent", "message.queued", "message.failed", "subscription.added",
               "subscription.removed", "auth.refreshed", "connection.error")


def event_id_key(event_id: str) -> tuple[int, ...] | None:
    """`<ms>-<seq>` compared numerically part by part; None for a stream's id (no position)."""
    try:
        return tuple(int(part) for part in event_id.split("-"))
    except ValueError:
        return None


def token_expiry(token: str) -> float | None:
    """The JWT's `exp` (seconds), read without verifying; None for API keys."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        return float(claims["exp"])
    except (ValueError, KeyError, TypeError):
        return None


@dataclass
class Event:
    type: str
    channel: str
    id: str | None
    payload: Any
    metadata: dict
    stream: StreamState | None = None  # for stream.* frames: the stream as applied so far

    @classmethod
    def from_frame(cls, f: dict) -> "Event":
        return cls(f["type"], f["channel"], f.get("id"), f.get("payload"), f.get("metadata") or {})


Handler = Callable[[Event], Any]


@dataclass
class Subscription:
    channel: str
    handler: Handler | None
    ack: bool = False
    filters: dict | None = None
    recovered: bool | None = None
    streams: dict[str, StreamState] = field(default_factory=dict)
    handled: OrderedDict = field(default_factory=OrderedDict)  # acked ids, bounded: redeliveries re-acked


class Client:
    def __init__(self, url: str, token: TokenSource, *, session_id: str | None = None,
                 client_type: str = "API_CLIENT", reconnect: bool = True, backoff_base_s: float = 0.2,
                 backoff_max_s: float = 5.0, request_timeout_s: float = 10.0,
                 refresh_margin_s: float = 30.0, auto_refresh: bool = True,
                 on_dead_letter: Callable[[ApiXError, str, str], Any] | None = None) -> None:
        base = url.rstrip("/")
        if base.startswith("ws"):
            base = "http" + base[2:]
        base = base.removesuffix("/v1/ws")
        self.http_url = base
        self.ws_url = "ws" + base[4:] + "/v1/ws"
        self._token_source = token
        self.session_id = session_id or f"py-{uuid.uuid4().hex}"
        self.client_type = client_type
        self.reconnect = reconnect
        self.backoff_base_s, self.backoff_max_s = backoff_base_s, backoff_max_s
        self.request_timeout_s = request_timeout_s
        self.refresh_margin_s = refresh_margin_s
        self.auto_refresh = auto_refresh
        self.on_dead_letter = on_dead_letter  # (error, channel, event id) of an event of ours dead-lettered
        self.http = HttpApi(base, self._token)
        self.subscriptions: dict[str, Subscription] = {}
        self.last_ids: dict[str, str] = {}  # per channel: ids are per channel, never compared across
        self.established: dict | None = None
        self.connected = asyncio.Event()
        self._ws = None
        self._pending: dict[str, asyncio.Future] = {}
        self._unanswered_publishes: dict[str, dict] = {}  # correlation id -> frame, resent on reconnect
        self._open_streams: dict[tuple[str, str], StreamPublisher] = {}
        self._corr = itertools.count(1)
        self._current_token: str | None = None
        self._tasks: set[asyncio.Task] = set()
        self._runner: asyncio.Task | None = None
        self._refresher: asyncio.Task | None = None
        self._closed = False
        self._fatal: ApiXError | None = None

    # ---- tokens

    async def _token(self) -> str:
        src = self._token_source
        value = src() if callable(src) else src
        if inspect.isawaitable(value):
            value = await value
        self._current_token = value
        return value

    async def refresh_token(self) -> dict:
        """Sends `auth.refresh` with a new token from the provider; returns `auth.refreshed`'s payload."""
        token = await self._token()
        reply = await self._request({"type": "auth.refresh", "payload": {"token": token}})
        self._schedule_refresh(token)
        return reply

    def _schedule_refresh(self, token: str) -> None:
        if self._refresher:
            self._refresher.cancel()
        exp = token_expiry(token)
        if exp is None or not callable(self._token_source) or not self.auto_refresh:
            return
        left = exp - time.time()
        delay = left - self.refresh_margin_s if left > 2 * self.refresh_margin_s else left / 2
        self._refresher = asyncio.get_running_loop().create_task(self._refresh_later(max(0.0, delay)))

    async def _refresh_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            await self.refresh_token()
        except ApiXError:
            pass  # the current token stays in force; expiry (4002) reconnects with a fresh one

    # ---- connection

    async def connect(self) -> dict:
        """Connects (or resumes this client's session); returns `connection.established`'s payload."""
        established = await self._open()
        self._runner = asyncio.get_running_loop().create_task(self._run())
        return established

    async def _open(self) -> dict:
        token = await self._token()
        ws = await websockets.connect(self.ws_url, subprotocols=["apix.v1.json"], max_size=None)
        payload: dict[str, Any] = {"sessionId": self.session_id, "clientType": self.client_type,
                                   "authentication": {"token": token}, "subscriptions": []}
        if self.last_ids:
            payload["resume"] = {"lastEventIds": dict(self.last_ids)}
        await ws.send(json.dumps({"type": "connect", "payload": payload}))
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), self.request_timeout_s))
            if frame["type"] == "connection.established":
                break
            if frame["type"] == "connection.error":
                await ws.close()
                raise error_from_wire(frame["payload"])
        self._ws = ws
        self.established = frame["payload"]
        self._schedule_refresh(token)
        self.connected.set()
        await self._after_established(frame["payload"])
        return frame["payload"]

    async def _after_established(self, est: dict) -> None:
        """Subscribes what the session lacks (with `since` where we have a position); resends the rest."""
        granted = set(est.get("subscriptions") or [])
        for sub in self.subscriptions.values():
            if sub.channel not in granted:
                self._send_soon(self._subscribe_frame(sub, self.last_ids.get(sub.channel), None))
        for frame in self._unanswered_publishes.values():
            self._send_soon(frame)
        for publisher in list(self._open_streams.values()):
            self._spawn(publisher._resume())

    async def _run(self) -> None:
        attempt = 0
        while not self._closed:
            ws = self._ws
            code = 1006
            try:
                async for raw in ws:
                    self._dispatch(json.loads(raw))
            except websockets.ConnectionClosed:
                pass
            rcvd = getattr(ws, "close_code", None)
            code = rcvd if rcvd is not None else 1006
            self._ws = None
            self.connected.clear()
            for publisher in self._open_streams.values():
                publisher._resuming = True
            if self._closed:
                return
            if not self.reconnect or not (close_code_allows_reconnect(code) or code == 4002):
                self._fail_pending(self._fatal or error_from_wire({"code": "UNAVAILABLE",
                                                                   "message": f"connection closed ({code})"}))
                return
            while not self._closed:
                delay = random.uniform(0, min(self.backoff_max_s, self.backoff_base_s * 2 ** attempt))
                attempt += 1
                await asyncio.sleep(delay)
                try:
                    await self._open()
                    attempt = 0
                    break
                except (OSError, asyncio.TimeoutError, websockets.WebSocketException, UnavailableError):
                    continue
                except ApiXError as err:
                    self._fail_pending(err)
                    return

    async def close(self) -> None:
        self._closed = True
        for task in (self._refresher, *self._tasks):
            if task:
                task.cancel()
        if self._ws is not None:
            await self._ws.close()
        if self._runner:
            await asyncio.gather(self._runner, return_exceptions=True)
        self._fail_pending(ApiXError("client closed", code="UNAVAILABLE"))

    async def drop(self) -> None:
        """Closes the socket abruptly, as a network drop would (the session then resumes): for tests."""
        if self._ws is not None:
            self._ws.transport.abort()

    async def __aenter__(self) -> "Client":
        await self.connect()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # ---- frames

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _send_soon(self, frame: dict) -> None:
        ws = self._ws
        if ws is not None:
            self._spawn(self._send_quietly(ws, frame))

    async def _send_quietly(self, ws, frame: dict) -> None:
        try:
            await ws.send(json.dumps(frame))
        except websockets.ConnectionClosed:
            pass  # resent after the reconnect when it matters (publishes, stream appends)

    async def _request(self, frame: dict, *, resend: bool = False) -> dict:
        corr = f"py-{next(self._corr)}"
        frame.setdefault("metadata", {})["correlation_id"] = corr
        fut = asyncio.get_running_loop().create_future()
        self._pending[corr] = fut
        if resend:
            self._unanswered_publishes[corr] = frame
        try:
            if self._ws is None:
                await asyncio.wait_for(self.connected.wait(), self.request_timeout_s)
            self._send_soon(frame)
            return await asyncio.wait_for(fut, self.request_timeout_s)
        except asyncio.TimeoutError:
            raise ApiXTimeoutError(f"no answer to {frame['type']} in {self.request_timeout_s}s") from None
        finally:
            self._pending.pop(corr, None)
            self._unanswered_publishes.pop(corr, None)

    def _fail_pending(self, err: ApiXError) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(err)

    def _dispatch(self, f: dict) -> None:
        kind = f.get("type")
        corr = (f.get("metadata") or {}).get("correlation_id")
        if kind == "heartbeat.ping":
            self._send_soon({"type": "heartbeat.pong", "payload": {"ts": (f.get("payload") or {}).get("ts")}})
            return
        if corr and corr in self._pending and kind in REPLY_TYPES:
            fut = self._pending[corr]
            if not fut.done():
                if kind in ("message.failed", "connection.error"):
                    fut.set_exception(error_from_wire(f["payload"]))
                else:
                    fut.set_result(f.get("payload") or {})
            return
        if kind == "connection.disconnected":
            p = f.get("payload") or {}
            if not p.get("reconnect", True):
                self._fatal = error_from_wire(p)
            return
        if kind == "message.failed":
            p = f.get("payload") or {}
            if (p.get("channel"), p.get("id")) in self._open_streams:
                self._on_stream_failure(p)
            elif p.get("id") and self.on_dead_letter:
                self.on_dead_letter(error_from_wire(p), p.get("channel"), p["id"])
            return
        if kind == "stream.cancel" and "channel" not in f:
            p = f.get("payload") or {}
            publisher = self._open_streams.get((p.get("channel"), p.get("streamId")))
            if publisher:
                publisher._on_cancel(p)
            return
        if f.get("channel") and kind not in REPLY_TYPES:
            self._on_channel_frame(f)

    def _on_stream_failure(self, p: dict) -> None:
        publisher = self._open_streams.get((p.get("channel"), p.get("id")))
        if publisher:
            publisher._on_failed(error_from_wire(p))

    def _on_channel_frame(self, f: dict) -> None:
        kind, channel = f["type"], f["channel"]
        if kind == "stream.cancel":
            publisher = self._open_streams.get((channel, (f.get("payload") or {}).get("streamId")))
            if publisher:
                publisher._on_cancel(f.get("payload") or {})
            return
        sub = self.subscriptions.get(channel)
        event = Event.from_frame(f)
        is_stream_part = kind in ("stream.start", "stream.append", "stream.snapshot")
        if is_stream_part or kind == "stream.end":
            state = self._stream_state(sub, f) if sub else None
            if state is None or not state.apply(f):
                return  # not a frame that follows: the server never sends one, and we never apply one
            event.stream = state
        if sub and sub.ack and not is_stream_part and event.id is not None:
            # A redelivery repeats the id of an event whose handler did not finish: dedupe by what
            # was handled, not by position; what was handled is only acked again.
            if event.id in sub.handled:
                self._send_soon({"type": "ack", "payload": {"channel": channel, "ids": [event.id]}})
                return
            self._advance(channel, event.id)
        elif not is_stream_part and event.id is not None:
            key, last = event_id_key(event.id), self.last_ids.get(channel)
            if key is not None and last is not None and key <= event_id_key(last):
                if sub and sub.ack:
                    self._send_soon({"type": "ack", "payload": {"channel": channel, "ids": [event.id]}})
                return  # a duplicate (across resumes): already handled
            if key is not None:
                self.last_ids[channel] = event.id
        if sub and sub.handler:
            self._spawn(self._handle(sub, event, ack=sub.ack and not is_stream_part and event.id is not None))

    def _advance(self, channel: str, event_id: str) -> None:
        key, last = event_id_key(event_id), self.last_ids.get(channel)
        if key is not None and (last is None or key > event_id_key(last)):
            self.last_ids[channel] = event_id

    def _stream_state(self, sub: Subscription, f: dict) -> StreamState | None:
        sid = (f.get("payload") or {}).get("streamId")
        if sid is None:
            return None
        state = sub.streams.get(sid)
        if state is None:
            if f["type"] not in ("stream.start", "stream.snapshot"):
                return None
            state = sub.streams[sid] = StreamState(sid)
        return state

    async def _handle(self, sub: Subscription, event: Event, ack: bool) -> None:
        try:
            result = sub.handler(event)
            if inspect.isawaitable(result):
                await result
        except Exception:  # noqa: BLE001 (a handler's failure must not stop the client)
            log.exception("handler of %s failed on %s %s%s", event.channel, event.type, event.id,
                          "; not acked: it will be redelivered" if ack else "")
            return
        if ack:
            sub.handled[event.id] = None
            while len(sub.handled) > HANDLED_IDS_KEPT:
                sub.handled.popitem(last=False)
            await self.ack(event.channel, [event.id])

    # ---- API

    def _subscribe_frame(self, sub: Subscription, since: str | None, replay_last: int | None) -> dict:
        payload: dict[str, Any] = {"channels": [sub.channel]}
        if sub.ack:
            payload["acknowledgment"] = True
        if sub.filters:
            payload["filters"] = sub.filters
        if since:
            payload["since"] = {sub.channel: since}
        if replay_last:
            payload["replay"] = {"last": replay_last}
        return {"type": "subscribe", "payload": payload}

    async def subscribe(self, channel: str, handler: Handler | None = None, *, ack: bool = False,
                        since: str | None = None, replay_last: int | None = None,
                        filters: dict | None = None) -> Subscription:
        """Handlers run one task per event (sync or async); with `ack`, the event is acked when the
        handler returns (an exception leaves it unacked: the gateway redelivers it)."""
        sub = Subscription(channel, handler, ack=ack, filters=filters)
        self.subscriptions[channel] = sub
        if since is not None:
            self.last_ids[channel] = since
        reply = await self._request(self._subscribe_frame(sub, since or self.last_ids.get(channel), replay_last))
        for denied in reply.get("denied") or []:
            if denied.get("channel") == channel:
                self.subscriptions.pop(channel, None)
                raise error_from_wire(denied)
        for entry in reply.get("channels") or []:
            if entry.get("channel") == channel:
                sub.recovered = entry.get("recovered")
        return sub

    async def unsubscribe(self, channel: str) -> None:
        self.subscriptions.pop(channel, None)
        await self._request({"type": "unsubscribe", "payload": {"channels": [channel]}})

    async def ack(self, channel: str, ids: list[str]) -> None:
        if self._ws is not None:
            await self._send_quietly(self._ws, {"type": "ack", "payload": {"channel": channel, "ids": ids}})

    async def publish(self, channel: str, type: str, payload: Any, *, idempotency_key: str | None = None,
                      metadata: dict | None = None) -> str:
        """Publishes over the WebSocket; returns the event id. Every publish carries an idempotency key
        (one is made when none is given) so a resend after a reconnect creates no second event."""
        meta = dict(metadata or {})
        meta["idempotency_key"] = idempotency_key or uuid.uuid4().hex
        reply = await self._request({"type": type, "channel": channel, "payload": payload, "metadata": meta},
                                    resend=True)
        return reply["id"]

    def stream(self, channel: str, *, event_type: str, data: Any = None,
               stream_id: str | None = None) -> StreamPublisher:
        return StreamPublisher(self, channel, event_type, stream_id or uuid.uuid4().hex[:24], data)

    async def cancel_stream(self, channel: str, stream_id: str, reason: str | None = None) -> None:
        payload = {"streamId": stream_id, **({"reason": reason} if reason else {})}
        self._send_soon({"type": "stream.cancel", "channel": channel, "payload": payload})

    async def publish_http(self, channel: str, type: str, payload: Any, **kw) -> str:
        return await self.http.publish(channel, type, payload, **kw)

    async def history(self, channel: str, **kw) -> dict:
        return await self.http.history(channel, **kw)
