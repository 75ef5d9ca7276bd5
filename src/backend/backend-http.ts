/**
 * One signed call to the platform's backend (proxy calls, RPC over HTTP): a JSON POST with
 * `X-Apix-Signature` (signature.ts), a deadline on the injectable clock, a bounded answer, and the answer
 * read at the edge (`BackendAnswerSchema`). Never throws: what went wrong is a {@link BackendFailure}.
 */
import { BackendAnswerSchema, formatIssues } from '@apix/protocol';
import type { BackendAnswer } from '@apix/protocol';
import type { Clock } from '../clock.ts';
import { SIGNATURE_HEADER, signatureHeader } from './signature.ts';

/** Largest answer read from the backend; a longer one is garbage. */
export const MAX_ANSWER_BYTES = 1024 * 1024;

/** Why a call has no usable answer: down (refused, reset, HTTP 5xx...), too slow, or garbage. */
export interface BackendFailure {
  readonly failure: 'down' | 'timeout' | 'garbage';
  readonly reason: string;
}

export type BackendOutcome = BackendAnswer | BackendFailure;

export function isFailure(o: BackendOutcome): o is BackendFailure {
  return 'failure' in o;
}

export interface BackendCallOptions {
  readonly secret: string;
  readonly timeoutMs: number;
  readonly clock: Clock;
}

/** POSTs `body` to `url`, signed, and reads the answer: `{result}` or `{error: {code, message}}`. */
export async function callBackend(
  url: string,
  body: unknown,
  options: BackendCallOptions,
): Promise<BackendOutcome> {
  const text = JSON.stringify(body);
  const abort = new AbortController();
  let timedOut = false;
  const timer = options.clock.setTimeout(() => {
    timedOut = true;
    abort.abort();
  }, options.timeoutMs);
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        [SIGNATURE_HEADER]: signatureHeader(options.secret, text, options.clock.now()),
      },
      body: text,
      signal: abort.signal,
      redirect: 'error',
    });
    const answer = await readBounded(res);
    if (answer === undefined) return { failure: 'garbage', reason: `answer over ${MAX_ANSWER_BYTES} bytes` };
    // A 4xx/5xx with a well-formed `{error}` is a refusal like any other; anything else from it is a failure.
    const parsed = parseAnswer(answer);
    if (!res.ok && (isFailure(parsed) || !('error' in parsed)))
      return { failure: res.status >= 500 ? 'down' : 'garbage', reason: `HTTP ${res.status}` };
    return parsed;
  } catch (err) {
    if (timedOut) return { failure: 'timeout', reason: `no answer within ${options.timeoutMs} ms` };
    return { failure: 'down', reason: describe(err) };
  } finally {
    timer.cancel();
  }
}

function parseAnswer(text: string): BackendOutcome {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { failure: 'garbage', reason: 'the answer is not JSON' };
  }
  const r = BackendAnswerSchema.safeParse(json);
  if (!r.success)
    return { failure: 'garbage', reason: `the answer is not {result} or {error}: ${formatIssues(r.error)}` };
  return r.data;
}

/** The body as text, or undefined past MAX_ANSWER_BYTES (the rest is not read). */
async function readBounded(res: Response): Promise<string | undefined> {
  if (!res.body) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_ANSWER_BYTES) {
      await reader.cancel().catch(() => {});
      return undefined;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function describe(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (err instanceof Error ? err.message : String(err));
}
