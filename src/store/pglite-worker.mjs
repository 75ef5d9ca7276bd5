/**
 * The embedded PostgreSQL (PGlite) on a thread of its own: src/store/pglite-thread.ts sends it SQL, it
 * answers with the rows as PostgreSQL's text (the calling thread parses them, with the parsers its caller
 * asked for). PGlite runs a query synchronously on the thread that owns it; here, that is never the
 * gateway's event loop.
 *
 * Plain JavaScript: a worker thread does not inherit the TypeScript loader of its parent on every Node
 * version, and this file needs none. Its messages are typed in pglite-thread.ts (PgliteRequest,
 * PgliteResponse, RawResult, ErrorData).
 */
import { Blob } from 'node:buffer';
import { getPriority, setPriority } from 'node:os';
import { setTimeout } from 'node:timers';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parentPort, workerData } from 'node:worker_threads';

// PostgreSQL's WebAssembly compiled by V8's baseline compiler (Liftoff) only, without the optimising tier:
// the optimised copies of its hot functions, and the compiler's own memory while making them, added about
// 35 MB to the idle process (165 -> 129 MB for the engine alone) and competed for the CPU at start; a batch
// of records (COPY of 2,000 rows) ran no slower without them on the 2-core test machine. Set before PGlite
// is loaded (the flag is read when the module is compiled); it holds for the whole process.
setFlagsFromString('--liftoff-only');

// The records and the audit trail are written in batches here, behind the traffic: this thread yields the
// CPU to the gateway's event loop whenever both want it (a core shared with it, or a busy machine), and
// takes the time the event loop leaves idle. On Linux a thread's nice value is its own (setpriority of the
// calling thread), so only this thread is lowered; the queues it drains are bounded and spill to disk.
// Raising a nice value needs no privilege; where it fails the thread runs at the process's priority.
const ENGINE_THREAD_NICE_STEP = 10;
try {
  setPriority(Math.min(19, getPriority() + ENGINE_THREAD_NICE_STEP));
} catch {
  // not permitted here (or not supported): the thread keeps the process's priority
}
const { PGlite, messages, types } = await import('@electric-sql/pglite');
const { appendAuditBatch } = await import('../audit/chain-batch.mjs');

/** @type {{ dataDir: string, sharedBuffersMb?: number }} */
const start = workerData;
const port = /** @type {import('node:worker_threads').MessagePort} */ (parentPort);
/** @param {string} text */
const identity = (text) => text;

/** @param {import('@electric-sql/pglite').Results} r */
const raw = (r) => ({
  fields: r.fields.map((f) => ({ name: f.name, dataTypeID: f.dataTypeID })),
  rows: r.rows,
  affectedRows: r.affectedRows,
  command: /** @type {{ command?: string }} */ (r).command,
});

async function open() {
  const defaults = /** @type {{ defaultStartParams?: string[] }} */ (/** @type {unknown} */ (PGlite))
    .defaultStartParams;
  const engine = new PGlite(start.dataDir, {
    ...(start.sharedBuffersMb !== undefined && defaults
      ? { startParams: [...defaults, '-c', `shared_buffers=${start.sharedBuffersMb}MB`] }
      : {}),
    parsers: Object.fromEntries(Object.keys(types.parsers).map((oid) => [oid, identity])),
  });
  await engine.waitReady;
  // PGlite adds a parser per array type at start; raw text for those too.
  const parsers = /** @type {{ parsers: Record<string, unknown> }} */ (/** @type {unknown} */ (engine))
    .parsers;
  for (const oid of Object.keys(parsers)) parsers[oid] = identity;
  // A new database is made by initdb, a WebAssembly instance of its own of some hundreds of MB, unreachable
  // once done but freed only by full collections, which this thread's small heap may not run for a long
  // time: collecting now returns that memory at start (770 -> about 400 MB) instead of at a random later
  // time.
  // The engine lets go of it over its first seconds, so a few collections, not one.
  setFlagsFromString('--expose-gc');
  const gc = /** @type {() => void} */ (runInNewContext('gc'));
  gc();
  for (const ms of [500, 1500, 3000, 6000]) setTimeout(gc, ms).unref();
  return engine;
}

const ready = open();
ready.then(
  () => port.postMessage({ id: 0, ok: true, result: undefined }),
  (err) => port.postMessage({ id: 0, ok: false, error: describe(err) }),
);

port.on('message', (/** @type {Request} */ req) => {
  void handle(req).then((res) => port.postMessage(res));
});

/**
 * @typedef {{ id: number, op: string, sql: string, params?: unknown[], csv?: string,
 *   entries?: import('../audit/chain-batch.d.mts').PendingEntry[], replay?: boolean }} Request
 */
/** @param {Request} req */
async function handle(req) {
  try {
    const engine = await ready;
    switch (req.op) {
      case 'query':
        return {
          id: req.id,
          ok: true,
          result: raw(
            await engine.query(req.sql, req.params, {
              rowMode: 'array',
              ...(req.csv !== undefined ? { blob: new Blob([req.csv]) } : {}),
            }),
          ),
        };
      case 'exec':
        return { id: req.id, ok: true, result: (await engine.exec(req.sql, { rowMode: 'array' })).map(raw) };
      case 'audit':
        // A batch of the audit trail, chained and stored here: the gateway's thread only handed it over.
        return {
          id: req.id,
          ok: true,
          result: await engine.transaction((tx) =>
            appendAuditBatch(
              {
                query: async (sql, params) => (await tx.query(sql, params)).rows,
                copyCsv: async (sql, csv) => void (await tx.query(sql, [], { blob: new Blob([csv]) })),
              },
              req.entries ?? [],
              req.replay === true,
            ),
          ),
        };
      case 'close':
        if (!engine.closed) await engine.close();
        return { id: req.id, ok: true, result: undefined };
      default:
        throw new Error(`unknown operation ${req.op}`);
    }
  } catch (err) {
    return { id: req.id, ok: false, error: describe(err) };
  }
}

/** An error as plain data: PostgreSQL's fields (code, detail, constraint, ...) survive the crossing. */
function describe(/** @type {unknown} */ err) {
  const e = /** @type {Record<string, unknown>} */ (err);
  /** @type {Record<string, string>} */
  const fields = {};
  if (e && typeof e === 'object')
    for (const [k, v] of Object.entries(e)) if (typeof v === 'string') fields[k] = v;
  return {
    message: e && typeof e === 'object' && typeof e.message === 'string' ? e.message : String(err),
    database: err instanceof messages.DatabaseError,
    fields,
  };
}
