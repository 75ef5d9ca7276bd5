/**
 * A webhook receiver, run as a child process by the tests (a real HTTP server, as a platform's backend):
 * it verifies `X-Apix-Signature` (HMAC-SHA256 of "<t>.<body>" with WEBHOOK_SECRET, `t` within 5 minutes)
 * and appends every event it accepts to WEBHOOK_LOG, one JSON line per event, before it answers 200, so a
 * kill loses nothing it acknowledged. A bad signature is answered 401 and recorded as `{"rejected": ...}`.
 *
 * Env: PORT (0: any; the port is printed as `listening <port>`), WEBHOOK_SECRET, WEBHOOK_LOG,
 * WEBHOOK_STATUS (answer this status instead of 200, after recording nothing: a failing receiver).
 */
import { createServer } from 'node:http';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { Buffer } from 'node:buffer';

const secret = process.env.WEBHOOK_SECRET ?? '';
const log = process.env.WEBHOOK_LOG;
const failStatus = process.env.WEBHOOK_STATUS ? Number(process.env.WEBHOOK_STATUS) : undefined;

function verify(body, header) {
  if (typeof header !== 'string') return 'no signature';
  const parts = Object.fromEntries(header.split(',').map((p) => p.split('=', 2)));
  const t = Number(parts.t);
  if (!Number.isInteger(t) || Math.abs(Date.now() / 1000 - t) > 300) return 'stale or missing t';
  const expected = createHmac('sha256', secret).update(`${t}.${body}`).digest();
  const given = Buffer.from(parts.v1 ?? '', 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected) ? undefined : 'bad signature';
}

const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    if (failStatus !== undefined) {
      res.writeHead(failStatus).end();
      return;
    }
    const why = verify(body, req.headers['x-apix-signature']);
    if (why) {
      if (log) appendFileSync(log, `${JSON.stringify({ rejected: why })}\n`);
      res.writeHead(401).end(why);
      return;
    }
    const { events } = JSON.parse(body);
    if (log)
      appendFileSync(
        log,
        events.map((e) => `${JSON.stringify({ ...e, receivedAt: Date.now() })}\n`).join(''),
      );
    res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"ok":true}');
  });
});
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
