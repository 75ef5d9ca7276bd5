/**
 * Server-Sent Events (PROTOCOL 1.1 §14): the real token is traded for a single-use ticket
 * (`POST /v1/sse/ticket`, the token in `Authorization`), and the connect frame with the ticket in its
 * place opens `GET /v1/sse?connect=<base64url>`, a `text/event-stream` with one frame per event. The
 * client's frames go out as in HTTP streaming. The stream is read with `fetch` rather than EventSource:
 * EventSource reconnects on its own with the same URL, whose ticket is spent; the client's session
 * reconnects (and resumes) instead.
 */
import { HttpStreamTransport } from './http-stream-transport.ts';

function base64url(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export class SseTransport extends HttpStreamTransport {
  protected override async open(connectText: string, signal: AbortSignal) {
    const frame = JSON.parse(connectText) as { payload: { authentication: { token: string } } };
    const auth = frame.payload.authentication;
    const t = await this.fetchImpl(`${this.base}/v1/sse/ticket`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${auth.token}` },
      signal,
    });
    if (t.status !== 200) return t;
    auth.token = (JSON.parse(await t.text()) as { ticket: string }).ticket;
    return this.fetchImpl(`${this.base}/v1/sse?connect=${base64url(JSON.stringify(frame))}`, {
      headers: { Accept: 'text/event-stream' },
      signal,
    });
  }

  /** Complete events (a blank line ends one): their `data:` lines joined; comments and `id:` skipped. */
  protected override parse(buffered: string, frame: (text: string) => void): string {
    let end: number;
    while ((end = buffered.indexOf('\n\n')) >= 0) {
      const block = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      let data: string | undefined;
      for (const line of block.split('\n'))
        if (line.startsWith('data:')) {
          const value = line.slice(line[5] === ' ' ? 6 : 5);
          data = data === undefined ? value : `${data}\n${value}`;
        }
      if (data !== undefined) frame(data);
    }
    return buffered;
  }
}
