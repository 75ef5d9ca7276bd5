/** A gauge read from its owner at each scrape (nothing to update on the hot path). */
import { Gauge } from 'prom-client';
import type { Registry } from 'prom-client';

export function readGauge(registry: Registry, name: string, help: string, read: () => number): Gauge {
  return new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(read());
    },
  });
}

/** `readGauge` bound to one registry: `gauge(name, help, read)`. */
export function gaugesOn(registry: Registry): (name: string, help: string, read: () => number) => Gauge {
  return (name, help, read) => readGauge(registry, name, help, read);
}
