/**
 * deploy/kubernetes/ holds manifests that fit the node: probes on the port and paths it serves, a grace
 * period that outlasts the SIGTERM drain, only documented settings, secrets only in the Secret, and a
 * PodDisruptionBudget, Service and HPA that select the Deployment's pods. No YAML parser is a
 * dependency, so the manifests keep to a small block subset of YAML that `parseYaml` reads (and
 * rejects anything else, so a manifest written outside it fails here rather than being misread).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SETTINGS, settingsOf } from '../../../src/config.ts';

const DIR = fileURLToPath(new URL('../../../deploy/kubernetes/', import.meta.url));

type Yaml = string | number | boolean | null | Yaml[] | { [key: string]: Yaml };
type Line = { indent: number; text: string; n: number };

function scalar(raw: string): Yaml {
  const s = raw.trim();
  if (s.startsWith('"')) return JSON.parse(s) as string;
  if (s.startsWith("'")) return s.slice(1, -1).replace(/''/g, "'");
  if (s === '{}') return {};
  if (s.startsWith('[')) {
    const inner = s.slice(1, -1).trim();
    return inner ? inner.split(',').map(scalar) : [];
  }
  if (/^-?\d+(\.\d+)?$/.test(s)) return Number(s);
  if (s === 'true' || s === 'false') return s === 'true';
  if (s === 'null' || s === '~') return null;
  assert.ok(!/^[{&*!|>]/.test(s), `unsupported YAML value: ${s}`);
  return s;
}

const KEY = /^([^\s:#-][^:]*?):(?: +(.*))?$/;

/** The value of the block starting at lines[at], whose indent is `indent`; returns the next index. */
function block(lines: Line[], at: number, indent: number): [Yaml, number] {
  const first = lines[at]!;
  if (first.text === '-' || first.text.startsWith('- ')) return sequence(lines, at, indent);
  return mapping(lines, at, indent);
}

function nested(lines: Line[], at: number, indent: number): [Yaml, number] {
  const next = lines[at];
  if (next && next.indent > indent) return block(lines, at, next.indent);
  // A sequence may sit at its key's indent.
  if (next && next.indent === indent && next.text.startsWith('-')) return sequence(lines, at, indent);
  return [null, at];
}

function mapping(lines: Line[], at: number, indent: number): [Yaml, number] {
  const map: { [key: string]: Yaml } = {};
  let i = at;
  while (i < lines.length && lines[i]!.indent === indent && !lines[i]!.text.startsWith('-')) {
    const line = lines[i]!;
    const m = KEY.exec(line.text);
    assert.ok(m, `line ${line.n}: expected "key: value", got ${line.text}`);
    const key = m[1]!.trim();
    assert.ok(!(key in map), `line ${line.n}: ${key} twice`);
    if (m[2] === undefined || m[2] === '') [map[key], i] = nested(lines, i + 1, indent);
    else [map[key], i] = [scalar(m[2]), i + 1];
  }
  assert.ok(i >= lines.length || lines[i]!.indent < indent, `line ${lines[i]?.n}: bad indentation`);
  return [map, i];
}

function sequence(lines: Line[], at: number, indent: number): [Yaml, number] {
  const items: Yaml[] = [];
  let i = at;
  while (i < lines.length && lines[i]!.indent === indent && lines[i]!.text.startsWith('-')) {
    const line = lines[i]!;
    const rest = line.text.slice(1).trimStart();
    if (!rest) {
      const [value, next] = nested(lines, i + 1, indent);
      items.push(value);
      i = next;
    } else if (KEY.test(rest)) {
      // `- key: value` opens a mapping indented past the dash.
      const inner = indent + line.text.length - rest.length;
      const copy = [...lines];
      copy[i] = { indent: inner, text: rest, n: line.n };
      const [value, next] = mapping(copy, i, inner);
      items.push(value);
      i = next;
    } else {
      items.push(scalar(rest));
      i += 1;
    }
  }
  return [items, i];
}

/** The documents of a multi-document YAML text (block style, plain or quoted scalars, `[a, b]`, `{}`). */
export function parseYaml(text: string): Yaml[] {
  return text.split(/^---\s*$/m).flatMap((doc) => {
    const lines = doc.split('\n').flatMap((raw, n): Line[] => {
      const body = raw.replace(/\s+#(?=(?:[^"]*"[^"]*")*[^"]*$).*$/, '').trimEnd();
      if (!body.trim() || body.trim().startsWith('#')) return [];
      return [{ indent: body.length - body.trimStart().length, text: body.trim(), n: n + 1 }];
    });
    if (lines.length === 0) return [];
    const [value, next] = block(lines, 0, lines[0]!.indent);
    assert.equal(next, lines.length, `line ${lines[next]?.n}: not parsed`);
    return [value];
  });
}

// The shapes of the fields this test reads.
type Labels = Record<string, string>;
type Port = { name?: string; containerPort: number };
type Probe = { httpGet: { path: string; port: string | number } };
type Container = {
  ports: Port[];
  env?: { name: string }[];
  envFrom?: ({ configMapRef: { name: string } } | { secretRef: { name: string } })[];
  readinessProbe: Probe;
  livenessProbe: Probe;
  lifecycle?: { preStop?: { exec?: { command: string[] }; sleep?: { seconds: number } } };
  resources?: { requests?: { cpu?: string } };
};
type Manifest = { kind: string; metadata: { name: string }; [field: string]: unknown };
type Deployment = Manifest & {
  spec: {
    replicas: number;
    selector: { matchLabels: Labels };
    template: {
      metadata: { labels: Labels };
      spec: { terminationGracePeriodSeconds: number; containers: Container[] };
    };
  };
};

function load(): { files: string[]; manifests: Manifest[] } {
  const files = readdirSync(DIR).filter((f) => f.endsWith('.yaml'));
  const manifests = files.flatMap((f) => parseYaml(readFileSync(DIR + f, 'utf8')) as Manifest[]);
  return { files, manifests };
}

const { files, manifests } = load();
function one<T extends Manifest>(kind: string): T {
  const found = manifests.filter((m) => m.kind === kind);
  assert.equal(found.length, 1, `one ${kind} in deploy/kubernetes`);
  return found[0] as T;
}
const deployment = one<Deployment>('Deployment');
const pod = deployment.spec.template;
const container = pod.spec.containers[0]!;
const config = one<Manifest & { metadata: { name: string }; data: Record<string, string> }>('ConfigMap');
const secret = one<Manifest & { stringData?: Record<string, string>; data?: Record<string, string> }>(
  'Secret',
);
const secretKeys = Object.keys({ ...secret.data, ...secret.stringData });
const documented = new Set(settingsOf(SETTINGS).map(({ setting }) => setting.env));

function portNumber(port: string | number): number {
  if (typeof port === 'number') return port;
  const named = container.ports.find((p) => p.name === port);
  assert.ok(named, `no container port named ${port}`);
  return named.containerPort;
}

function selects(selector: Labels): void {
  for (const [k, v] of Object.entries(selector)) assert.equal(pod.metadata.labels[k], v, `pod label ${k}`);
}

describe('deploy/kubernetes', () => {
  it('kustomization.yaml lists every manifest', () => {
    const kustomization = one<Manifest & { resources: string[] }>('Kustomization');
    const others = files.filter((f) => f !== 'kustomization.yaml');
    assert.deepEqual([...kustomization.resources].sort(), others.sort());
  });

  it('probes /readyz (readiness) and /healthz (liveness) on APIX_PORT', () => {
    const port = Number(config.data['APIX_PORT']);
    assert.ok(port > 0, 'the ConfigMap sets APIX_PORT');
    assert.equal(container.readinessProbe.httpGet.path, '/readyz');
    assert.equal(container.livenessProbe.httpGet.path, '/healthz');
    assert.equal(portNumber(container.readinessProbe.httpGet.port), port);
    assert.equal(portNumber(container.livenessProbe.httpGet.port), port);
  });

  it('has a preStop, and a grace period longer than preStop + APIX_DRAIN_TIMEOUT_MS + 5 s', () => {
    const preStop = container.lifecycle?.preStop;
    assert.ok(preStop && (preStop.exec ?? preStop.sleep), 'a preStop hook');
    const command = preStop.exec?.command.join(' ') ?? '';
    const preStopSeconds = preStop.sleep?.seconds ?? Number(/^sleep (\d+)$/.exec(command)?.[1] ?? 0);
    const drainSeconds = Number(config.data['APIX_DRAIN_TIMEOUT_MS'] ?? 10000) / 1000;
    // The node exits at the latest 5 s after the drain (docs/deployment.md, Graceful drain).
    assert.ok(pod.spec.terminationGracePeriodSeconds > preStopSeconds + drainSeconds + 5);
  });

  it('names only documented settings, and keeps the secret ones in the Secret', () => {
    const envFrom = container.envFrom ?? [];
    assert.ok(envFrom.some((e) => 'configMapRef' in e && e.configMapRef.name === config.metadata.name));
    assert.ok(envFrom.some((e) => 'secretRef' in e && e.secretRef.name === secret.metadata.name));
    const names = [...Object.keys(config.data), ...secretKeys, ...(container.env ?? []).map((e) => e.name)];
    for (const name of names) assert.ok(documented.has(name), `${name} is not in docs/configuration.md`);
    // The names config.ts never echoes are the secret ones.
    for (const name of Object.keys(config.data))
      assert.doesNotMatch(name, /SECRET|KEY|PASSWORD|URL/, `${name} belongs in the Secret`);
  });

  it('several replicas come with REDIS_URL and DATABASE_URL', () => {
    const hpa = one<Manifest & { spec: { minReplicas: number } }>('HorizontalPodAutoscaler');
    assert.ok(deployment.spec.replicas > 1 || hpa.spec.minReplicas > 1);
    for (const name of ['APIX_JWT_SECRET', 'REDIS_URL', 'DATABASE_URL'])
      assert.ok(secretKeys.includes(name), name);
  });

  it('the Deployment, PDB and Service select the pods; the HPA scales the Deployment on CPU', () => {
    selects(deployment.spec.selector.matchLabels);
    selects(
      one<Manifest & { spec: { selector: { matchLabels: Labels } } }>('PodDisruptionBudget').spec.selector
        .matchLabels,
    );
    const service = one<Manifest & { spec: { selector: Labels; ports: { targetPort: string | number }[] } }>(
      'Service',
    );
    selects(service.spec.selector);
    assert.equal(portNumber(service.spec.ports[0]!.targetPort), Number(config.data['APIX_PORT']));
    const hpa = one<
      Manifest & {
        spec: {
          scaleTargetRef: { kind: string; name: string };
          metrics: { type: string; resource?: { name: string } }[];
        };
      }
    >('HorizontalPodAutoscaler');
    assert.deepEqual(
      [hpa.spec.scaleTargetRef.kind, hpa.spec.scaleTargetRef.name],
      ['Deployment', deployment.metadata.name],
    );
    assert.ok(hpa.spec.metrics.some((m) => m.type === 'Resource' && m.resource?.name === 'cpu'));
    assert.ok(container.resources?.requests?.cpu, 'a CPU request (the HPA measures against it)');
  });
});
