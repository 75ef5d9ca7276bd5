"""Streams (docs/protocol.md §14) checked by a second implementation, in Python with the standard library:
run by apix_client.py with the `streams` argument. A subscriber keeps, per stream, its text and last seq,
and applies a `stream.append` only when `fromSeq` is its seq + 1 (anything else is a FAIL: the server must
never send it); a `stream.snapshot` replaces the text and seq."""
import json, time, urllib.request

PIECES = [f"p{i} " for i in range(300)]

class Reader:
    """One subscriber's view of one stream, with every seq it applied (to check: no gap, nothing twice)."""
    def __init__(self, ws, name):
        self.ws, self.name = ws, name
        self.text, self.seq, self.applied, self.end, self.bad = "", 0, [], None, []

    def apply(self, f):
        p = f["payload"]
        if f["type"] == "stream.start":
            self.text, self.seq = "", 0
        elif f["type"] == "stream.snapshot":
            if p["seq"] > self.seq:
                # Everything up to seq, as one piece: what was applied before is part of it.
                self.text, self.seq = p["text"], p["seq"]
                self.applied = list(range(1, p["seq"] + 1))
        elif f["type"] == "stream.append":
            if p["fromSeq"] != self.seq + 1:
                self.bad.append((self.seq, p["fromSeq"]))
                return
            self.text += p["text"]
            self.applied.extend(range(p["fromSeq"], p["seq"] + 1))
            self.seq = p["seq"]
        elif f["type"] == "stream.end":
            self.end = f

    def pump(self, stream_id, until_end=False, timeout=10.0):
        """Applies the stream frames that arrived (all of them up to stream.end when `until_end`)."""
        deadline = time.time() + timeout
        while not (until_end and self.end):
            try:
                f = self.ws.until(lambda f: f["type"].startswith("stream.") and f.get("payload", {}).get("streamId") == stream_id,
                                  timeout=max(0.05, deadline - time.time()) if until_end else 0.05)
            except (TimeoutError, OSError):
                if until_end and time.time() < deadline: continue
                return
            self.apply(f)

def subscribe(ws, ch):
    ws.send({"type": "subscribe", "payload": {"channels": [ch]}, "metadata": {"correlation_id": "sub"}})
    ws.until(lambda f: f["type"] == "subscription.added")

def main(connect, check, run, host, port, token):
    ch = "agent:pys-" + run
    pub, _ = connect("pys-pub-" + run)
    s1, _ = connect("pys-s1-" + run)
    subscribe(s1, ch)
    first = Reader(s1, "from the start")
    pub.send({"type": "stream.start", "channel": ch, "payload": {"streamId": "py1", "eventType": "agent_message", "data": {"agentId": "py"}},
              "metadata": {"correlation_id": "st"}})
    started = pub.until(lambda f: f["type"] in ("message.sent", "message.failed"))
    check("stream.start -> message.sent with the stream's id and seq 0", started["type"] == "message.sent" and started["payload"].get("seq") == 0, str(started))
    for piece in PIECES[:100]:
        pub.send({"type": "stream.append", "channel": ch, "payload": {"streamId": "py1", "text": piece}})
        time.sleep(0.002)
    first.pump("py1")
    # A subscriber joining halfway gets one snapshot, then the live appends.
    s2, _ = connect("pys-s2-" + run)
    subscribe(s2, ch)
    late = Reader(s2, "joined halfway")
    # The third one follows, then drops its connection and resumes its session.
    s3, _ = connect("pys-s3-" + run)
    subscribe(s3, ch)
    resumer = Reader(s3, "dropped and resumed")
    for piece in PIECES[100:200]:
        pub.send({"type": "stream.append", "channel": ch, "payload": {"streamId": "py1", "text": piece}})
        time.sleep(0.002)
    resumer.pump("py1")
    s3.close()  # dropped mid-stream
    for piece in PIECES[200:]:
        pub.send({"type": "stream.append", "channel": ch, "payload": {"streamId": "py1", "text": piece}})
        time.sleep(0.002)
    s3b, est = connect("pys-s3-" + run)
    check("the dropped subscriber resumed its session", est["payload"]["resumed"] is True and ch in est["payload"]["subscriptions"], str(est["payload"]))
    resumer.ws = s3b
    pub.send({"type": "stream.end", "channel": ch, "payload": {"streamId": "py1", "status": "complete"}, "metadata": {"correlation_id": "end"}})
    ended = pub.until(lambda f: f["type"] in ("message.sent", "message.failed") and f["metadata"].get("correlation_id") == "end")
    check("stream.end -> message.sent with the compacted event's id and the last seq", ended["type"] == "message.sent" and ended["payload"].get("seq", 0) >= 1, str(ended))
    full = "".join(PIECES)
    for r in (first, late, resumer):
        r.pump("py1", until_end=True)
        ok = r.text == full and not r.bad and r.applied == list(range(1, r.seq + 1)) and r.end and r.end["id"] == ended["payload"]["id"]
        check(f"subscriber {r.name}: the full text once, seq 1..{r.seq} with no gap and nothing twice", ok,
              f"len {len(r.text)}/{len(full)} bad={r.bad[:3]} end={r.end and r.end.get('id')}")
    hist = json.load(urllib.request.urlopen(urllib.request.Request(f"http://{host}:{port}/v1/channels/{ch}/history",
                     headers={"authorization": f"Bearer {token}"})))
    compacted = [e for e in hist["events"] if e["type"] == "agent_message"]
    check("the history holds ONE compacted event with the whole text", len(compacted) == 1 and compacted[0]["payload"]["text"] == full
          and compacted[0]["payload"]["status"] == "complete" and compacted[0]["payload"]["agentId"] == "py", str([e["type"] for e in hist["events"]]))
    # Cancellation: a subscriber asks, the publisher is told (and decides: it ends the stream cancelled).
    pub.send({"type": "stream.start", "channel": ch, "payload": {"streamId": "py2", "eventType": "agent_message"}, "metadata": {"correlation_id": "st2"}})
    pub.until(lambda f: f["type"] == "message.sent" and f["metadata"].get("correlation_id") == "st2")
    s2.send({"type": "stream.cancel", "channel": ch, "payload": {"streamId": "py2", "reason": "stop"}})
    cancel = pub.until(lambda f: f["type"] == "stream.cancel", timeout=10)
    check("stream.cancel from a subscriber reaches the publisher", cancel["payload"]["streamId"] == "py2" and cancel["payload"]["reason"] == "stop", str(cancel))
    for ws in (pub, s1, s2, s3b): ws.close()
