/**
 * A real Chromium for browser tests, through playwright-core and the system's browser (Debian's
 * `chromium` package; never `npx playwright install`). `CHROMIUM_PATH` overrides the search.
 *
 * Without a browser the suites skip with a loud message, except under CI=true, where a missing browser is
 * a failure (.ci/run installs it).
 */
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import type { Browser } from 'playwright-core';

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

export function chromiumPath(): string | undefined {
  const fromEnv = process.env.CHROMIUM_PATH;
  if (fromEnv) return existsSync(fromEnv) ? fromEnv : undefined;
  return CANDIDATES.find((p) => existsSync(p));
}

/** The `skip` option for node:test: a reason when no Chromium is installed (throws under CI=true). */
export function skipWithoutChromium(): string | false {
  if (chromiumPath()) return false;
  const msg = `Chromium not found (${process.env.CHROMIUM_PATH ?? CANDIDATES.join(', ')}): the browser tests cannot run`;
  if (process.env.CI === 'true') throw new Error(`${msg}; CI=true requires them`);
  console.warn(
    `\n!!!!!!!! ${msg}; SKIPPING them. apt-get install -y chromium, or set CHROMIUM_PATH. !!!!!!!!\n`,
  );
  return 'chromium not installed';
}

export function launchChromium(): Promise<Browser> {
  const executablePath = chromiumPath();
  if (!executablePath) throw new Error('no Chromium installed');
  return chromium.launch({
    executablePath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-dev-shm-usage'],
  });
}
