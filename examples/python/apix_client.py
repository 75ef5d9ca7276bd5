#!/usr/bin/env python3
"""A client of the APIX wire protocol written from docs/protocol.md alone, in Python with only the
standard library (RFC 6455 framing by hand). Connect, subscribe, publish over WebSocket and HTTP, replay
with `since`, drop the connection and resume the session; then the same over Server-Sent Events
(docs/transports.md: a ticket, `GET /v1/sse`, frames up with `POST /v1/frames`, `Last-Event-ID`), and a
WebSocket session resumed over SSE: each step prints PASS or FAIL (exit 1).
With a 4th argument `streams`, it checks streams instead (docs/protocol.md §14, docs/streams.md): a
publisher appends 300 pieces; one subscriber follows from the start, one joins halfway, one drops and
resumes; all three end with the same text, a seq chain with no gap and nothing twice; the history holds
one compacted event; a subscriber's stream.cancel reaches the publisher.

    python3 examples/python/apix_client.py 127.0.0.1 8080 "$(npx apix token --sub py-agent --org acme --roles service)" [streams]

Run by tests/e2e/python-client.test.ts against a real node."""
import base64, hashlib, http.client, json, os, socket, struct, sys, time, urllib.error, urllib.request

HOST, PORT, TOKEN = sys.argv[1], int(sys.argv[2]), sys.argv[3]

class Ws:
    def __init__(self):
        self.s = socket.create_connection((HOST, PORT))
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall((f"GET /v1/ws HTTP/1.1\r\nHost: {HOST}:{PORT}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: apix.v1.json\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.s.recv(1)
        assert head.startswith(b"HTTP/1.1 101"), head
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        assert accept.encode() in head and b"apix.v1.json" in head, head
        self.buf = b""
        self.seen = []

    def send(self, obj):
        data = json.dumps(obj).encode()
        mask = os.urandom(4)
        n = len(data)
        hdr = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n))
        self.s.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError("closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self, timeout=5.0):
        self.s.settimeout(timeout)
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126: n = struct.unpack(">H", self._read(2))[0]
            elif n == 127: n = struct.unpack(">Q", self._read(8))[0]
            data = self._read(n)
            op = b0 & 0x0F
            if op == 0x9:  # WebSocket ping: answer pong
                self.s.sendall(bytes([0x8A, 0x80 | len(data)]) + b"\0\0\0\0" + data)
                continue
            if op == 0x8:
                raise EOFError(f"close {struct.unpack('>H', data[:2])[0] if len(data) >= 2 else ''}")
            frame = json.loads(data)
            if frame["type"] == "heartbeat.ping":
                self.send({"type": "heartbeat.pong", "payload": {"ts": frame["payload"]["ts"]}})
                continue
            return frame

    def until(self, pred, timeout=5.0):
        # Frames that arrive while waiting for another are kept for later waits, in order.
        for i, f in enumerate(self.seen):
            if pred(f):
                return self.seen.pop(i)
        end = time.time() + timeout
        while True:
            f = self.recv(max(0.1, end - time.time()))
            if pred(f):
                return f
            self.seen.append(f)

    def close(self):
        self.s.close()  # a dropped connection, not a clean close

class Sse:
    """The protocol over Server-Sent Events: frames down a `text/event-stream`, up with `POST /v1/frames`."""
    def __init__(self, connect_frame, last_event_id=None):
        t = urllib.request.Request(f"http://{HOST}:{PORT}/v1/sse/ticket", method="POST", headers={"authorization": f"Bearer {TOKEN}"})
        ticket = json.load(urllib.request.urlopen(t))["ticket"]
        connect_frame["payload"]["authentication"]["token"] = ticket  # the URL holds a single-use ticket, never the token
        q = base64.urlsafe_b64encode(json.dumps(connect_frame).encode()).decode().rstrip("=")
        self.c = http.client.HTTPConnection(HOST, PORT, timeout=5)
        self.c.request("GET", f"/v1/sse?connect={q}", headers={"Accept": "text/event-stream", **({"Last-Event-ID": last_event_id} if last_event_id else {})})
        self.r = self.c.getresponse()
        assert self.r.status == 200 and self.r.getheader("X-Accel-Buffering") == "no", (self.r.status, self.r.getheaders())
        self.seen = []
        self.token = None
        self.last_event_id = None

    def send(self, obj):
        req = urllib.request.Request(f"http://{HOST}:{PORT}/v1/frames", method="POST", data=json.dumps(obj).encode(),
                                     headers={"content-type": "application/json", "x-apix-session-token": self.token})
        assert urllib.request.urlopen(req).status == 202

    def recv(self, timeout=5.0):
        self.c.sock.settimeout(timeout)
        data, event_id = "", None
        while True:
            line = self.r.readline()
            if not line:
                raise EOFError("stream ended")
            line = line.decode().rstrip("\n")
            if line.startswith("id: "): event_id = line[4:]
            elif line.startswith("data: "): data += line[6:]
            elif line == "" and data:
                frame = json.loads(data)
                data = ""
                if event_id: self.last_event_id = event_id
                if frame["type"] == "connection.established": self.token = frame["payload"].get("sessionToken")
                if frame["type"] == "heartbeat.ping":
                    self.send({"type": "heartbeat.pong", "payload": {"ts": frame["payload"]["ts"]}})
                    continue
                return frame

    until = Ws.until

    def close(self):
        self.c.sock.close()  # dropped

def connect(session, resume=None):
    ws = Ws()
    payload = {"sessionId": session, "clientType": "API_CLIENT", "authentication": {"token": TOKEN}, "subscriptions": []}
    if resume: payload["resume"] = {"lastEventIds": resume}
    ws.send({"type": "connect", "payload": payload, "metadata": {"correlation_id": "py-1"}})
    est = ws.until(lambda f: f["type"] in ("connection.established", "connection.error"))
    assert est["type"] == "connection.established", est
    return ws, est

def check(name, cond, detail=""):
    print(("PASS " if cond else "FAIL ") + name + (f"  {detail}" if detail else ""))
    if not cond: sys.exit(1)

run = str(int(time.time()))
if len(sys.argv) > 4 and sys.argv[4] == "streams":
    import apix_streams_check  # noqa: E402 (the streams steps, below in this directory)
    apix_streams_check.main(connect, check, run, HOST, PORT, TOKEN)
    sys.exit(0)
ch = "agent:py-" + run
a, est = connect("py-s1-" + run)
check("connect -> connection.established", est["payload"]["resumed"] is False and est["metadata"]["correlation_id"] == "py-1")
a.send({"type": "subscribe", "payload": {"channels": [ch]}, "metadata": {"correlation_id": "py-2"}})
sub = a.until(lambda f: f["type"] == "subscription.added")
check("subscribe -> subscription.added", sub["payload"]["channels"][0]["channel"] == ch and not sub["payload"]["denied"])
ids = []
for i in range(3):
    a.send({"type": "agent_status_update", "channel": ch, "payload": {"agentId": "py", "status": "running", "step": i},
            "metadata": {"correlation_id": f"p{i}"}})
    ids.append(a.until(lambda f: f["type"] == "message.sent")["payload"]["id"])
req = urllib.request.Request(f"http://{HOST}:{PORT}/v1/publish", method="POST", headers={"authorization": f"Bearer {TOKEN}", "content-type": "application/json"},
                             data=json.dumps({"channel": ch, "type": "agent_status_update", "payload": {"agentId": "py", "status": "idle", "step": 3}}).encode())
ids.append(json.load(urllib.request.urlopen(req))["id"])
got = [a.until(lambda f: f.get("channel") == ch and "id" in f)["id"] for _ in range(4)]
check("4 events (3 over WebSocket, 1 over HTTP) received once, in order", got == ids, str(got))

b, _ = connect("py-s2-" + run)
b.send({"type": "subscribe", "payload": {"channels": [ch], "since": {ch: ids[1]}}})
added = b.until(lambda f: f["type"] == "subscription.added")
replayed = [b.until(lambda f: f.get("channel") == ch and "id" in f)["id"] for _ in range(2)]
check("subscribe with since -> the later events, recovered", replayed == ids[2:] and added["payload"]["channels"][0]["recovered"] is True, str(replayed))
b.close()

a.close()  # dropped
time.sleep(0.3)
missed = [json.load(urllib.request.urlopen(urllib.request.Request(f"http://{HOST}:{PORT}/v1/publish", method="POST",
          headers={"authorization": f"Bearer {TOKEN}", "content-type": "application/json"},
          data=json.dumps({"channel": ch, "type": "agent_status_update", "payload": {"agentId": "py", "status": "running", "step": 10 + k}}).encode())))["id"] for k in range(2)]
a2, est2 = connect("py-s1-" + run, resume={ch: ids[-1]})
check("reconnect with the same sessionId -> resumed", est2["payload"]["resumed"] is True and ch in est2["payload"]["subscriptions"])
after = [a2.until(lambda f: f.get("channel") == ch and "id" in f)["id"] for _ in range(2)]
check("the 2 missed events, once, in order", after == missed, str(after))
try:
    extra = a2.until(lambda f: f.get("channel") == ch and "id" in f, timeout=0.7)
    check("no duplicate", False, str(extra))
except (socket.timeout, TimeoutError):
    check("no duplicate", True)
a2.close()

# ---- the same over Server-Sent Events

def connect_sse(session, last_event_id=None, subscriptions=()):
    sse = Sse({"type": "connect", "payload": {"sessionId": session, "clientType": "API_CLIENT", "authentication": {"token": TOKEN},
               "subscriptions": list(subscriptions)}}, last_event_id)
    est = sse.until(lambda f: f["type"] in ("connection.established", "connection.error"))
    assert est["type"] == "connection.established", est
    return sse, est

def publish_http(step):
    req = urllib.request.Request(f"http://{HOST}:{PORT}/v1/publish", method="POST", headers={"authorization": f"Bearer {TOKEN}", "content-type": "application/json"},
                                 data=json.dumps({"channel": ch, "type": "agent_status_update", "payload": {"agentId": "py", "status": "running", "step": step}}).encode())
    return json.load(urllib.request.urlopen(req))["id"]

try:  # a URL with the real token is refused: only tickets go in connect=
    q = base64.urlsafe_b64encode(json.dumps({"type": "connect", "payload": {"sessionId": "x", "clientType": "API_CLIENT",
        "authentication": {"token": TOKEN}, "subscriptions": []}}).encode()).decode().rstrip("=")
    urllib.request.urlopen(f"http://{HOST}:{PORT}/v1/sse?connect={q}")
    check("SSE refuses a token in the URL", False)
except urllib.error.HTTPError as e:
    check("SSE refuses a token in the URL", e.code == 401, str(e.code))
s1, est = connect_sse("py-sse-" + run, subscriptions=[ch])
check("SSE: connection.established with a sessionToken", est["payload"]["resumed"] is False and bool(s1.token))
s1.send({"type": "agent_status_update", "channel": ch, "payload": {"agentId": "py", "status": "running", "step": 20},
         "metadata": {"correlation_id": "sse-1"}})
sent = s1.until(lambda f: f["type"] == "message.sent")["payload"]["id"]
ev = s1.until(lambda f: f.get("channel") == ch and "id" in f)
check("SSE: publish with POST /v1/frames, the event back with id: <channel>/<id>", ev["id"] == sent and s1.last_event_id == f"{ch}/{sent}", s1.last_event_id)
s1.close()
missed = [publish_http(21 + k) for k in range(2)]
away = [sent] + missed  # the WebSocket session py-s1 (dropped above) missed these too
s2, est = connect_sse("py-sse2-" + run, last_event_id=s1.last_event_id, subscriptions=[ch])
got = [s2.until(lambda f: f.get("channel") == ch and "id" in f)["id"] for _ in range(2)]
check("SSE: Last-Event-ID resumes after it: the 2 missed events, once, in order", got == missed, str(got))
s2.close()
away.append(publish_http(30))
s3, est = connect_sse("py-s1-" + run)
got = [s3.until(lambda f: f.get("channel") == ch and "id" in f)["id"] for _ in away]
check("the WebSocket session resumed over SSE, with what it missed, once, in order", est["payload"]["resumed"] is True and got == away, str(got))
s3.close()
