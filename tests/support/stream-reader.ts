/**
 * Test support: a subscriber's view of streams (docs/protocol.md §14), built from the frames it was sent,
 * in order, with the rules a client applies. It throws on any break of the contract: an append whose
 * `fromSeq` is not the last seq + 1 (a gap, or a piece twice), an append or end of an unknown stream, a
 * snapshot going backwards, an end whose seq is not the last one.
 */
import type { Frame } from './gateway.ts';

export interface StreamView {
  text: string;
  seq: number;
  status: string;
  /** How the view started: `start` (live from the beginning), `snapshot`, or `compacted` (history). */
  via: 'start' | 'snapshot' | 'compacted';
  snapshots: number;
  appends: number;
  /** The id of `stream.end` or of the compacted event. */
  endId: string | undefined;
}

export function readStreams(frames: readonly Frame[], channel: string): Map<string, StreamView> {
  const views = new Map<string, StreamView>();
  for (const f of frames) {
    if (f.channel !== channel) continue;
    const p = f.payload ?? {};
    switch (f.type) {
      case 'stream.start':
        if (f.id === undefined) break; // (the publisher's own `stream.start` frames have no id)
        if (views.has(p.streamId)) throw new Error(`stream.start of ${p.streamId} twice`);
        views.set(p.streamId, blank('start'));
        break;
      case 'stream.snapshot': {
        const v = views.get(p.streamId);
        if (v && v.status !== 'streaming') throw new Error(`snapshot of ended ${p.streamId}`);
        if (v && (p.seq < v.seq || !String(p.text).startsWith(v.text)))
          throw new Error(`snapshot of ${p.streamId} goes backwards (${p.seq} < ${v.seq})`);
        const next = v ?? blank('snapshot');
        next.text = p.text;
        next.seq = p.seq;
        next.snapshots++;
        views.set(p.streamId, next);
        break;
      }
      case 'stream.append': {
        const v = views.get(p.streamId);
        if (!v) throw new Error(`append to unknown stream ${p.streamId}`);
        if (v.status !== 'streaming') throw new Error(`append to ended ${p.streamId}`);
        if (p.fromSeq !== v.seq + 1 || p.seq < p.fromSeq)
          throw new Error(`append ${p.fromSeq}..${p.seq} of ${p.streamId} after seq ${v.seq}`);
        v.text += p.text;
        v.seq = p.seq;
        v.appends++;
        break;
      }
      case 'stream.end': {
        if (f.id === undefined) break;
        const v = views.get(p.streamId);
        if (!v) throw new Error(`end of unknown stream ${p.streamId}`);
        if (v.status !== 'streaming') throw new Error(`end of ${p.streamId} twice`);
        if (p.seq !== v.seq) throw new Error(`end of ${p.streamId} at seq ${p.seq}, view at ${v.seq}`);
        v.status = p.status;
        v.endId = f.id;
        break;
      }
      default: {
        const streamId = f.metadata?.stream;
        if (typeof streamId !== 'string' || f.id === undefined) break;
        const v = views.get(streamId);
        if (v && v.status !== 'streaming') throw new Error(`compacted event of ended ${streamId}`);
        if (v && !String(p.text).startsWith(v.text)) throw new Error(`compacted ${streamId} disagrees`);
        const next = v ?? blank('compacted');
        next.text = p.text;
        next.seq = p.seq;
        next.status = p.status;
        next.endId = f.id;
        views.set(streamId, next);
      }
    }
  }
  return views;
}

function blank(via: StreamView['via']): StreamView {
  return { text: '', seq: 0, status: 'streaming', via, snapshots: 0, appends: 0, endId: undefined };
}
