/**
 * `apix serve [--workers N]`: runs a gateway node until SIGINT/SIGTERM, then drains gracefully.
 */
import { ConfigError, loadConfig } from '../../config.ts';
import type { Config } from '../../config.ts';
import { discardPrestarted, prestartEmbedded } from '../../store/embedded-open.ts';
import { parseArgs } from '../args.ts';
import { resolveJwtSecret, withSecret, devSecretPath, tokenCommand } from '../dev-secret.ts';
import { randomBytes } from 'node:crypto';
import { isWorker, runPrimary, workerPlanProblem } from '../workers.ts';
import { createLogger } from '../../log.ts';
import { loadTlsFiles } from '../../tls.ts';
import type { TlsFiles } from '../../tls.ts';
import type { Logger } from '../../log.ts';
import type { ApiXNode } from '../../node.ts';
import type { Records } from '../../records.ts';

export async function run(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const args = parseArgs(argv);
  const loaded = loadServeConfig(env);
  if (typeof loaded === 'number') return loaded;
  const { tls } = loaded;
  const { secret, generated } = resolveJwtSecret(loaded.config, true);
  let config = withSecret(loaded.config, secret);
  const workers = checkServePlan(config, args.options.workers);
  if (workers === undefined) return 1;
  if (workers > 1 && !isWorker()) return runPrimary(workers, (line) => process.stderr.write(line + '\n'));
  const baseId = config.nodeId ?? `n${randomBytes(4).toString('hex')}`;
  config = { ...config, nodeId: isWorker() ? `${baseId}-w${env.APIX_WORKER_INDEX ?? '0'}` : baseId };
  const log = createLogger(config.logLevel, config.nodeId!);
  const opened = await openServingNode(config, log, tls);
  if (opened === undefined) return 1;
  const { registerFeedExample, registerSdkBundle } = await import('../../http/examples.ts');
  const { node, records } = opened;
  const engines = node.engines;
  registerSdkBundle(node.httpRouter);
  registerFeedExample(node.httpRouter);
  try {
    await node.listen();
  } catch (err) {
    process.stderr.write(`apix: cannot listen on ${config.host}:${config.port}: ${(err as Error).message}\n`);
    await records?.close();
    await engines.close();
    return 1;
  }
  if (!env.APIX_JWT_SECRET && secret && !isWorker()) {
    process.stderr.write(
      `APIX ${generated ? 'created a' : 'uses the'} development JWT secret in ${devSecretPath(config.dataDir)}.\n` +
        `Mint a token:  ${tokenCommand(config.dataDir, '--sub alice --org acme --roles member')}\n` +
        `Connect:       ${node.wsUrl}\n`,
    );
  }
  stopOnSignals(config, node, records);
  await new Promise(() => {});
  return 0;
}

/** The config and the TLS files, or the exit code after a one-line message. */
function loadServeConfig(env: NodeJS.ProcessEnv): { config: Config; tls: TlsFiles | undefined } | number {
  try {
    const config = loadConfig(env);
    // Before anything is opened: a missing or bad certificate stops the start with one line.
    const tls = loadTlsFiles(config);
    return { config, tls };
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`apix: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

/** The number of workers to run, or undefined after a one-line message when the config cannot serve. */
function checkServePlan(config: Config, workersOption: string | true | undefined): number | undefined {
  if (!config.auth.jwtSecret && !config.auth.jwksUrl && !config.auth.publicKeyPem) {
    process.stderr.write(
      'apix: no way to verify tokens (set APIX_JWT_SECRET, APIX_JWKS_URL or APIX_JWT_PUBLIC_KEY)\n',
    );
    return undefined;
  }
  const workers = Number(workersOption ?? config.workers);
  if (!Number.isInteger(workers) || workers < 1 || workers > 256) {
    process.stderr.write('apix: --workers must be a whole number from 1 to 256\n');
    return undefined;
  }
  const problem = workerPlanProblem({
    workers,
    redisUrl: config.redisUrl,
    databaseUrl: config.databaseUrl,
    records: config.records,
  });
  if (problem) {
    process.stderr.write(`apix: ${problem}\n`);
    return undefined;
  }
  return workers;
}

/** Opens the node (engines and records), or returns undefined after a one-line message. */
async function openServingNode(
  config: Config,
  log: Logger,
  tls: TlsFiles | undefined,
): Promise<{ readonly node: ApiXNode; readonly records: Records | undefined } | undefined> {
  // The embedded database first: it opens on its own thread while this one loads the gateway's modules
  // (node.ts and what it imports, Prisma's client among them), which are loaded only now for that reason.
  if (config.records && !config.databaseUrl)
    prestartEmbedded(config.dataDir, {
      sharedBuffersMb: config.embeddedDbBuffersMb,
      idleCloseMs: config.embeddedDbIdleCloseMs,
    });
  try {
    const { NodeOpenError, openNode } = await import('../../node.ts');
    try {
      return await openNode(config, { log, ...(tls ? { tls } : {}) });
    } catch (err) {
      if (!(err instanceof NodeOpenError)) throw err;
      process.stderr.write(`apix: ${err.message}: ${(err.cause as Error).message}\n`);
      return undefined;
    }
  } finally {
    // Taken by openNode when it got that far; else closed, so that the process can exit.
    await discardPrestarted();
  }
}

/** On SIGINT/SIGTERM: drains the node, closes the records and exits (forced after the drain timeout). */
function stopOnSignals(config: Config, node: ApiXNode, records: Records | undefined): void {
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    node.log.info({ signal }, 'draining');
    const force = setTimeout(() => process.exit(1), config.drainTimeoutMs + 5000);
    force.unref();
    await node.close();
    await records?.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}
