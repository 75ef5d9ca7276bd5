/**
 * RPC (docs/protocol.md §12): `client.rpc(method, payload)` asks a backend service and settles with its one
 * answer; `client.handle(method, fn)` makes this client (with service credentials) serve a method, and
 * registers it again after every reconnect. Calls in flight when the connection drops reject with
 * UNAVAILABLE: their answer would go to the old connection, and the call may or may not have been served.
 */
import { ApiXError, ErrorCode, isApiXError } from '@apix/protocol/errors';
import type { Clock, TimerHandle } from '@apix/protocol/clock';
import type { RpcCaller, ServerFrameOf } from '@apix/protocol/schemas';
import type { SessionLink } from './session.ts';

export interface RpcOptions {
  /** The server answers TIMEOUT after this long (default: the server's APIX_RPC_TIMEOUT_MS, 10 s). */
  readonly timeoutMs?: number;
}

export interface HandleOptions {
  /** Callers need one of these roles (else FORBIDDEN); absent: any caller of the organization. */
  readonly roles?: readonly string[];
}

/** A method's implementation: its result is the answer; a throw is an `rpc.error` (its code if an ApiXError). */
export type RpcHandler = (payload: unknown, caller: RpcCaller) => unknown;

/** How long past the server's own timeout the client waits before giving up by itself. */
const LOCAL_GRACE_MS = 5_000;
const DEFAULT_SERVER_TIMEOUT_MS = 10_000;

interface PendingCall {
  readonly resolve: (result: unknown) => void;
  readonly reject: (error: ApiXError) => void;
  readonly timer: TimerHandle;
}

export class Rpc {
  private readonly calls = new Map<string, PendingCall>();
  private readonly handlers = new Map<string, { fn: RpcHandler; roles: readonly string[] }>();

  constructor(
    private readonly session: SessionLink,
    private readonly clock: Clock,
  ) {}

  call(method: string, payload: unknown, options: RpcOptions = {}): Promise<unknown> {
    if (this.session.state !== 'connected')
      return Promise.reject(new ApiXError(ErrorCode.UNAVAILABLE, 'not connected'));
    const correlationId = this.session.nextCorrelationId();
    return new Promise((resolve, reject) => {
      const waitMs = (options.timeoutMs ?? DEFAULT_SERVER_TIMEOUT_MS) + LOCAL_GRACE_MS;
      const timer = this.clock.setTimeout(
        () => this.settle(correlationId, new ApiXError(ErrorCode.TIMEOUT, `no answer within ${waitMs} ms`)),
        waitMs,
      );
      this.calls.set(correlationId, { resolve, reject, timer });
      // A frame the server refuses (a bad method name) answers `connection.error` with this correlation id.
      this.session.requests.set(correlationId, { onError: (e) => this.settle(correlationId, e) });
      const timeout = options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs };
      this.session.send({
        type: 'rpc',
        payload: { method, payload, ...timeout },
        metadata: { correlation_id: correlationId },
      });
    });
  }

  handle(method: string, fn: RpcHandler, options: HandleOptions = {}): void {
    this.handlers.set(method, { fn, roles: options.roles ?? [] });
    if (this.session.state === 'connected') this.register([method]);
  }

  /** Connected (again): every method this client serves is registered on the new connection. */
  onEstablished(): void {
    if (this.handlers.size > 0) this.register([...this.handlers.keys()]);
  }

  /** The connection is gone: calls in flight cannot get their answer. */
  onDisconnected(): void {
    this.rejectAll(new ApiXError(ErrorCode.UNAVAILABLE, 'the connection dropped before the answer'));
  }

  rejectAll(error: ApiXError): void {
    for (const id of [...this.calls.keys()]) this.settle(id, error);
  }

  onResult(frame: ServerFrameOf<'rpc.result'>, correlationId: string | undefined): void {
    if (correlationId !== undefined) this.settle(correlationId, undefined, frame.payload.result);
  }

  /** False when the error answers none of this client's calls (a refused `rpc.register`). */
  onError(frame: ServerFrameOf<'rpc.error'>, correlationId: string | undefined): boolean {
    if (correlationId === undefined || !this.calls.has(correlationId)) return false;
    this.settle(correlationId, new ApiXError(frame.payload.code, frame.payload.message));
    return true;
  }

  /** A request for a method this client serves: run it, answer with its result or its error. */
  async onRequest(frame: ServerFrameOf<'rpc.request'>): Promise<void> {
    const { requestId, method, payload, caller } = frame.payload;
    const handler = this.handlers.get(method);
    let answer: { result: unknown } | { error: { code: ErrorCode; message: string } };
    try {
      if (!handler) throw new ApiXError(ErrorCode.UNAVAILABLE, `this service does not serve ${method}`);
      answer = { result: (await handler.fn(payload, caller)) ?? null };
    } catch (err) {
      const e = isApiXError(err) ? err : undefined;
      answer = {
        error: {
          code: e?.code ?? ErrorCode.INTERNAL,
          message: e?.message ?? (err instanceof Error ? err.message : String(err)),
        },
      };
    }
    this.session.send({ type: 'rpc.response', payload: { requestId, ...answer } });
  }

  private register(methods: readonly string[]): void {
    const list = methods.map((name) => {
      const roles = this.handlers.get(name)?.roles ?? [];
      return roles.length > 0 ? { name, roles: [...roles] } : { name };
    });
    const correlationId = this.session.nextCorrelationId();
    this.session.send({
      type: 'rpc.register',
      payload: { methods: list },
      metadata: { correlation_id: correlationId },
    });
  }

  private settle(correlationId: string, error: ApiXError | undefined, result?: unknown): void {
    const call = this.calls.get(correlationId);
    if (!call) return;
    this.calls.delete(correlationId);
    this.session.requests.delete(correlationId);
    call.timer.cancel();
    if (error) call.reject(error);
    else call.resolve(result);
  }
}
