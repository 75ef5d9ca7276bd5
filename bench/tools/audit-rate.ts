/**
 * How many audit entries per second APIX sustains under a fan-out load: an `apix serve` with records on
 * (embedded PGlite, audit of every publish), N subscribers over C channels, publishes at a fixed rate
 * for a while; then the node's own counters (/metrics: apix_audit_written, _queued, _spilled, _dropped).
 *
 *   node --import tsx bench/tools/audit-rate.ts [--rate 1000] [--seconds 20] [--subscribers 1000] [--channels 100]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import WebSocket from 'ws';
import { SignJWT } from 'jose';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const rate = arg('rate', 1000);
const seconds = arg('seconds', 20);
const subscribers = arg('subscribers', 1000);
const channels = arg('channels', 100);
const secret = 'audit-rate-secret-0123456789-abcdef';

const port = await new Promise<number>((resolve) => {
  const s = createServer().listen(0, '127.0.0.1', () => {
    const p = (s.address() as { port: number }).port;
    s.close(() => resolve(p));
  });
});
const dataDir = mkdtempSync(join(tmpdir(), 'apix-audit-rate-'));
const server = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve'], {
  env: {
    ...process.env,
    APIX_PORT: String(port),
    APIX_HOST: '127.0.0.1',
    APIX_DATA_DIR: dataDir,
    APIX_JWT_SECRET: secret,
    APIX_LOG_LEVEL: 'warn',
    APIX_RATE_PUBLISH_PER_SEC: '0',
    APIX_RATE_CONNECTION_PER_SEC: '0',
    APIX_RATE_CHANNEL_PER_SEC: '0',
    APIX_RATE_ORG_PUBLISH_PER_SEC: '0',
    APIX_RATE_ORG_SUBSCRIBE_PER_SEC: '0',
    APIX_RATE_ADDRESS_PER_SEC: '0',
  },
  stdio: 'inherit',
});
const http = `http://127.0.0.1:${port}`;
const token = (sub: string, roles: string[]) =>
  new SignJWT({ org: 'acme', roles })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(secret));
const metric = async (name: string) => {
  const text = await (await fetch(`${http}/metrics`)).text();
  const m = new RegExp(`^${name}\\{[^}]*\\} ([0-9.e+]+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
};
try {
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${http}/readyz`)).ok) break;
    } catch {
      // not up yet
    }
    if (i > 600) throw new Error('gateway not ready');
    await new Promise((r) => setTimeout(r, 100));
  }
  const open = async (sub: string, roles: string[], subs: string[]) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/ws`, { perMessageDeflate: false });
    await new Promise((r) => ws.once('open', r));
    ws.send(
      JSON.stringify({
        type: 'connect',
        payload: {
          sessionId: sub,
          clientType: 'API_CLIENT',
          authentication: { token: await token(sub, roles) },
          subscriptions: subs,
        },
      }),
    );
    await new Promise((r) => ws.once('message', r));
    return ws;
  };
  let delivered = 0;
  const subs: WebSocket[] = [];
  for (let i = 0; i < subscribers; i++) {
    const ws = await open(`s${i}`, ['member'], [`agent:c${i % channels}`]);
    ws.on('message', () => delivered++);
    subs.push(ws);
  }
  const pubs = await Promise.all(
    Array.from({ length: Math.max(1, Math.ceil(rate / 100)) }, (_, i) => open(`p${i}`, ['service'], [])),
  );
  const before = await metric('apix_audit_written');
  process.stdout.write(
    `audit-rate: ${subscribers} subscribers over ${channels} channels; publishing ${rate}/s for ${seconds} s\n`,
  );
  const started = Date.now();
  let sent = 0;
  let shown = -1;
  while (Date.now() - started < seconds * 1000) {
    const due = Math.floor(((Date.now() - started) / 1000) * rate);
    for (; sent < due; sent++)
      pubs[sent % pubs.length]!.send(
        JSON.stringify({ type: 'note', channel: `agent:c${sent % channels}`, payload: { n: sent } }),
      );
    await new Promise((r) => setTimeout(r, 5));
    const second = Math.floor((Date.now() - started) / 1000);
    if (second !== shown) {
      shown = second;
      process.stdout.write(`  ${second} s, ${sent} published\n`);
    }
  }
  await new Promise((r) => setTimeout(r, 3000));
  const written = (await metric('apix_audit_written')) - before;
  const elapsed = (Date.now() - started) / 1000;
  const result = {
    published: sent,
    deliveries: delivered,
    auditWritten: written,
    auditPerSecond: Math.round(written / elapsed),
    auditQueued: await metric('apix_audit_queued'),
    auditSpilled: await metric('apix_audit_spilled'),
    auditDropped: await metric('apix_audit_dropped'),
  };
  process.stdout.write(`\n${JSON.stringify(result, null, 2)}\n`);
  for (const ws of [...subs, ...pubs]) ws.terminate();
} finally {
  server.kill('SIGTERM');
  await new Promise((r) => server.once('exit', r));
  rmSync(dataDir, { recursive: true, force: true });
}
