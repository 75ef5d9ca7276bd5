"""Streams (docs/protocol.md §14, docs/streams.md): a publisher that appends pieces, and the subscriber's
view of one stream, which applies a `stream.append` only when its `fromSeq` is its seq + 1."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ApiXError, error_from_wire

if TYPE_CHECKING:
    from .client import Client


@dataclass
class StreamState:
    """What a subscriber holds of one stream: the text so far, its last seq, and how it ended."""
    stream_id: str
    event_type: str | None = None
    data: Any = None
    text: str = ""
    seq: int = 0
    status: str = "streaming"
    end_id: str | None = None  # the compacted event's id, from stream.end
    error: Any = None

    @property
    def done(self) -> bool:
        return self.status != "streaming"

    def apply(self, frame: dict) -> bool:
        """Applies one stream frame; False when it does not follow (then it changes nothing)."""
        p = frame.get("payload") or {}
        kind = frame["type"]
        if kind == "stream.start":
            self.event_type, self.data, self.text, self.seq = p.get("eventType"), p.get("data"), "", 0
            return True
        if kind == "stream.snapshot":
            if p["seq"] < self.seq:
                return False
            self.event_type, self.data = p.get("eventType"), p.get("data")
            self.text, self.seq = p["text"], p["seq"]
            return True
        if kind == "stream.append":
            if p["fromSeq"] != self.seq + 1:
                return False
            self.text += p["text"]
            self.seq = p["seq"]
            return True
        if kind == "stream.end":
            self.status, self.end_id, self.error = p.get("status", "complete"), frame.get("id"), p.get("error")
            return True
        return False


@dataclass
class StreamPublisher:
    """`async with client.stream(channel, event_type=...) as s: await s.append(token)`.

    Tokens that come within `flush_s` of each other go in one `stream.append` frame (the gateway rates
    frames per connection). Every sent piece is kept until the stream ends, so that after a reconnect
    the stream is started again and the pieces after the server's `seq` are sent again."""
    client: "Client"
    channel: str
    event_type: str
    stream_id: str
    data: Any = None
    flush_s: float = 0.005
    pieces: list[str] = field(default_factory=list)
    seq: int = 0
    cancel_reason: str | None = None
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    _buffer: list[str] = field(default_factory=list)
    _flush_handle: asyncio.TimerHandle | None = None
    _failure: ApiXError | None = None
    _open: bool = False
    _resuming: bool = False  # between a lost connection and the re-start: pieces kept, not sent

    async def start(self) -> "StreamPublisher":
        payload: dict[str, Any] = {"streamId": self.stream_id, "eventType": self.event_type}
        if self.data is not None:
            payload["data"] = self.data
        reply = await self.client._request({"type": "stream.start", "channel": self.channel, "payload": payload})
        self.seq = int(reply.get("seq", 0))
        self._open = True
        self.client._open_streams[(self.channel, self.stream_id)] = self
        return self

    async def __aenter__(self) -> "StreamPublisher":
        return await self.start()

    async def __aexit__(self, exc_type, exc, tb) -> None:
        if not self._open:
            return
        if exc_type is None:
            await self.end("complete")
        elif issubclass(exc_type, asyncio.CancelledError):
            await self.end("cancelled")
        else:
            await self.end("error", error={"code": "INTERNAL", "message": str(exc)[:200]})

    async def append(self, text: str) -> None:
        if self._failure:
            raise self._failure
        if not self._open:
            raise error_from_wire({"code": "STREAM_NOT_OPEN", "message": f"stream {self.stream_id} is not open"})
        if not text:
            return
        self._buffer.append(text)
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_later(self.flush_s, self._flush)
        await asyncio.sleep(0)  # let the loop send; an LLM loop that never awaits still flushes

    def _flush(self) -> None:
        self._flush_handle = None
        if not self._buffer:
            return
        piece = "".join(self._buffer)
        self._buffer.clear()
        self.pieces.append(piece)
        if self._resuming:
            return  # sent by _resume, after the server says which appends it has
        self.client._send_soon({"type": "stream.append", "channel": self.channel,
                                "payload": {"streamId": self.stream_id, "text": piece}})

    async def end(self, status: str = "complete", *, data: Any = None, error: dict | None = None) -> str:
        """Ends the stream; returns the compacted event's id (a position in the channel)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        self._flush()
        payload: dict[str, Any] = {"streamId": self.stream_id, "status": status}
        if data is not None:
            payload["data"] = data
        if error is not None:
            payload["error"] = error
        self._open = False
        try:
            reply = await self.client._request({"type": "stream.end", "channel": self.channel, "payload": payload})
        finally:
            self.client._open_streams.pop((self.channel, self.stream_id), None)
        if self._failure:
            raise self._failure
        return reply["id"]

    async def _resume(self) -> None:
        """After a reconnect: start again (the server answers the last accepted seq), resend the rest."""
        reply = await self.client._request({"type": "stream.start", "channel": self.channel,
                                            "payload": {"streamId": self.stream_id, "eventType": self.event_type}})
        accepted = int(reply.get("seq", 0))
        # Each piece was one append, so piece k has seq (this publisher's first seq) + k + 1.
        self._resuming = False
        for piece in self.pieces[max(0, accepted - self.seq):]:
            self.client._send_soon({"type": "stream.append", "channel": self.channel,
                                    "payload": {"streamId": self.stream_id, "text": piece}})

    def _on_failed(self, err: ApiXError) -> None:
        if err.code != "STREAM_TOO_LARGE":  # too large refuses one append; the stream stays open
            self._failure = err

    def _on_cancel(self, payload: dict) -> None:
        self.cancel_reason = payload.get("reason") or "cancelled"
        self.cancelled.set()
