import { collectDefaultMetrics, Registry } from 'prom-client';

/**
 * A service's Prometheus registry: the default process/Node metrics (prefixed duet_) plus the
 * service's own, every series labelled with the service name.
 */
export function createMetricsRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry, prefix: 'duet_' });
  return registry;
}

/** Histogram buckets (ms) for per-tick stage times: fine below the 160 ms chunk. */
export const STAGE_MS_BUCKETS = [1, 2, 5, 10, 15, 20, 30, 40, 60, 80, 100, 120, 160, 240, 320, 640];
