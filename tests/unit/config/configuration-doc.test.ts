/**
 * docs/configuration.md lists every setting of the table (SETTINGS, from which EnvSchema is derived), only
 * those, each once, with the schema's default (a variable without a default shows `—`); every variable the
 * page names is in the table.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { EnvSchema, SETTINGS, settingsOf } from '../../../src/config.ts';

const page = readFileSync(new URL('../../../docs/configuration.md', import.meta.url), 'utf8');

/** `| \`NAME\` | default | ...` rows of the page's tables. */
function documentedRows(): Map<string, string> {
  const rows = new Map<string, string>();
  for (const line of page.split('\n')) {
    const m = /^\| `([A-Z][A-Z0-9_]+)` \| ([^|]*) \|/.exec(line);
    if (!m) continue;
    assert.ok(!rows.has(m[1]!), `${m[1]} is listed twice`);
    rows.set(m[1]!, m[2]!.trim());
  }
  return rows;
}

function shownDefault(value: unknown): string {
  return Array.isArray(value) ? value.join(',') : String(value);
}

describe('docs/configuration.md', () => {
  const rows = documentedRows();
  const names = Object.keys(EnvSchema.shape);
  const defaults = EnvSchema.parse({}) as Record<string, unknown>;

  it('lists every variable of the schema, and no other', () => {
    assert.deepEqual([...rows.keys()].sort(), [...names].sort());
  });

  it("shows each variable's default", () => {
    for (const name of names) {
      const cell = rows.get(name) ?? '';
      const value = defaults[name];
      if (value === undefined || (Array.isArray(value) && value.length === 0))
        assert.match(cell, /^—/, `${name} has no default: its cell should start with —`);
      else assert.equal(cell, `\`${shownDefault(value)}\``, `${name}'s default`);
    }
  });

  it('every setting of the table is documented, and every variable the page names is a setting', () => {
    const table = settingsOf(SETTINGS).map(({ setting }) => setting.env);
    assert.deepEqual([...table].sort(), [...rows.keys()].sort());
    // Anywhere on the page (prose too), except families written as `APIX_RATE_ABUSE_*`.
    const named = new Set(page.match(/\b(?:APIX|REDIS|DATABASE)_[A-Z0-9_]*[A-Z0-9]\b(?!_\*)/g) ?? []);
    for (const name of named)
      assert.ok(table.includes(name), `${name} is named on the page but is no setting`);
  });
});
