/**
 * Picking a gateway among several: open a WebSocket to each, time the handshake (TCP + upgrade, about
 * two round trips; three with TLS), and prefer the fastest. Handshake time is measurable from a browser
 * without credentials and without CORS, which an HTTP probe would need. Simple on purpose: a later
 * version can weigh the server's reported load as well.
 */
import { WS_SUBPROTOCOL } from '@apix/protocol/constants';
import { systemClock, type Clock } from '@apix/protocol/clock';
import { defaultWebSocket, normalizeGatewayUrl, type WebSocketConstructor } from './transport.ts';

export interface GatewayProbeOptions {
  WebSocket?: WebSocketConstructor;
  /** A probe that has not opened by then counts as unreachable. Default 3000. */
  timeoutMs?: number;
  /** Probes per gateway; the smallest time counts (first handshakes include DNS). Default 1. */
  samples?: number;
  clock?: Clock;
}

export interface GatewayRtt {
  readonly url: string;
  /** Handshake time in ms; Infinity when the gateway could not be reached. */
  readonly rttMs: number;
}

/** The handshake time to one gateway in ms, or Infinity when it fails or times out. */
export function probeGateway(url: string, options: GatewayProbeOptions = {}): Promise<number> {
  const WebSocketImpl = options.WebSocket ?? defaultWebSocket();
  if (!WebSocketImpl) return Promise.reject(new Error('no WebSocket implementation: pass { WebSocket }'));
  const clock = options.clock ?? systemClock;
  const timeoutMs = options.timeoutMs ?? 3000;
  return new Promise((resolve) => {
    const started = clock.now();
    let settled = false;
    let socket: InstanceType<WebSocketConstructor> | undefined;
    const finish = (rtt: number): void => {
      if (settled) return;
      settled = true;
      timer.cancel();
      if (socket) {
        socket.onopen = socket.onerror = socket.onclose = null;
        try {
          // 1000: a probe that ends before `connect` is not an error; the server just drops it.
          socket.close(1000, 'probe');
        } catch {
          // Closing a socket that never opened throws in some implementations.
        }
      }
      resolve(rtt);
    };
    const timer = clock.setTimeout(() => finish(Infinity), timeoutMs);
    try {
      socket = new WebSocketImpl(normalizeGatewayUrl(url), [WS_SUBPROTOCOL]);
    } catch {
      finish(Infinity);
      return;
    }
    socket.onopen = () => finish(clock.now() - started);
    socket.onerror = () => finish(Infinity);
    socket.onclose = () => finish(Infinity);
  });
}

/** Every gateway with its handshake time, fastest first; unreachable ones last, in the given order. */
export async function rankGateways(
  urls: readonly string[],
  options: GatewayProbeOptions = {},
): Promise<GatewayRtt[]> {
  const samples = Math.max(1, options.samples ?? 1);
  const measured = await Promise.all(
    urls.map(async (url, index) => {
      let best = Infinity;
      for (let i = 0; i < samples; i++) best = Math.min(best, await probeGateway(url, options));
      return { url, rttMs: best, index };
    }),
  );
  measured.sort((a, b) => (a.rttMs === b.rttMs ? a.index - b.index : a.rttMs - b.rttMs));
  return measured.map(({ url, rttMs }) => ({ url, rttMs }));
}

/** The fastest reachable gateway, or the first one when none answered (the caller's reconnect loop retries). */
export async function selectGateway(
  urls: readonly string[],
  options: GatewayProbeOptions = {},
): Promise<string> {
  if (urls.length === 0) throw new Error('selectGateway needs at least one url');
  if (urls.length === 1) return urls[0] as string;
  const ranked = await rankGateways(urls, options);
  return (ranked[0] as GatewayRtt).url;
}
