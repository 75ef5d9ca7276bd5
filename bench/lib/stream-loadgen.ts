/**
 * A load-generator process of bench scenario (g) fan-out (bench/streams.ts): it runs a share of the
 * streams end to end, so that S=1,000 streams x 20 appends/s x 10 subscribers is not bound by one
 * client process. For its channels it opens 10 subscriber connections (each subscribed to all of them)
 * and one publisher per 100 streams, starts one stream per channel, appends on the parent's `go`, and
 * records append -> subscriber latency (each piece carries its send time; publisher and subscribers
 * share this process's clock). IPC: setup -> ready, go -> sent (once every piece sent has arrived),
 * finish -> stats.
 */
import { Histogram } from './histogram.ts';
import type { SparseHistogram } from './histogram.ts';
import { endStream, now, openMany, startStream } from './stream-clients.ts';
import type { Client } from './stream-clients.ts';
import { sleep } from './proc.ts';

export type ToStreamLoadgen =
  | { op: 'setup'; url: string; channels: string[]; subscribers: number; tag: string }
  | { op: 'go'; durationMs: number; appendsPerSec: number }
  | { op: 'finish' };

export type FromStreamLoadgen =
  | { op: 'ready' }
  | { op: 'sent'; sent: number; pieces: number }
  | { op: 'stats'; sent: number; pieces: number; histogram: SparseHistogram }
  | { op: 'error'; error: string };

const hist = new Histogram();
let pieces = 0;
let sent = 0;
let channels: string[] = [];
let subs: Client[] = [];
let pubs: Client[] = [];

function reply(m: FromStreamLoadgen): void {
  process.send!(m);
}

async function setup(url: string, chans: string[], subscribers: number, tag: string): Promise<void> {
  channels = chans;
  subs = await openMany(url, subscribers, `reader-${tag}-`, ['member']);
  for (const s of subs) {
    s.onFrame = (f) => {
      if (f.type !== 'stream.append') return;
      const t = now();
      for (const part of (f.payload.text as string).split(';')) {
        if (part === '') continue;
        hist.record(Math.max(0, t - Number(part)));
        pieces++;
      }
    };
    await s.subscribe(channels);
  }
  pubs = await openMany(url, Math.ceil(channels.length / 100), `agent-${tag}-`, ['service']);
  await Promise.all(channels.map((ch, i) => startStream(pubs[i % pubs.length]!, ch, 'g')));
}

/** Each stream appends `appendsPerSec` times a second, round robin; a late tick catches up. */
async function go(durationMs: number, appendsPerSec: number): Promise<void> {
  const S = channels.length;
  const t0 = now();
  const end = t0 + durationMs;
  const perMs = (S * appendsPerSec) / 1000;
  while (now() < end) {
    const due = Math.floor((now() - t0) * perMs);
    for (; sent < due; sent++) {
      const i = sent % S;
      pubs[i % pubs.length]!.send({
        type: 'stream.append',
        channel: channels[i],
        payload: { streamId: 'g', text: `${now()};` },
      });
    }
    await sleep(5);
  }
  // Until every piece has arrived (at most 2 minutes): the gateway's CPU is measured over the same time,
  // so a gateway that falls behind is measured doing the work, not after.
  const expected = sent * subs.length;
  const deadline = now() + 120_000;
  while (pieces < expected && now() < deadline) await sleep(20);
}

async function finish(): Promise<void> {
  await sleep(1500);
  await Promise.all(channels.map((ch, i) => endStream(pubs[i % pubs.length]!, ch, 'g')));
  for (const c of [...subs, ...pubs]) c.close();
}

process.on('message', (m: ToStreamLoadgen) => {
  const run = async (): Promise<void> => {
    if (m.op === 'setup') {
      await setup(m.url, m.channels, m.subscribers, m.tag);
      reply({ op: 'ready' });
    } else if (m.op === 'go') {
      await go(m.durationMs, m.appendsPerSec);
      reply({ op: 'sent', sent, pieces });
    } else {
      await finish();
      reply({ op: 'stats', sent, pieces, histogram: hist.toSparse() });
      process.disconnect();
    }
  };
  run().catch((e: unknown) => reply({ op: 'error', error: String((e as Error)?.stack ?? e) }));
});
