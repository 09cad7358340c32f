/**
 * Metrics through prom-client, on a registry the application may pass (as @platformatic/kafka
 * takes one): Tidemark's metrics then sit beside the application's own and the process, GC and
 * event-loop metrics prom-client collects. Metric names are part of the operations contract
 * (docs/operations.md).
 */
import {
  Counter,
  Gauge,
  Histogram,
  Registry,
  collectDefaultMetrics,
  type CounterConfiguration,
  type GaugeConfiguration,
  type HistogramConfiguration,
} from 'prom-client';

export { Registry };

/**
 * A registry for a service that brings none: Tidemark's metrics plus prom-client's defaults
 * (process CPU and memory, GC, event-loop delay, handles).
 */
export function createMetricsRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}

/**
 * The metric of that name in the registry, or a new one. Two plugins (or a plugin and a service)
 * on one registry then share their instruments instead of failing on a duplicate name.
 */
function reuse<M extends object>(
  registry: Registry,
  name: string,
  kind: abstract new (...args: never[]) => M,
  create: () => M,
): M {
  const metric = registry.getSingleMetric(name);
  if (metric === undefined) return create();
  if (!(metric instanceof kind)) {
    throw new Error(`metric '${name}' is already registered with another type`);
  }
  return metric;
}

export function counter<L extends string>(
  registry: Registry,
  config: Omit<CounterConfiguration<L>, 'registers'>,
): Counter<L> {
  return reuse(
    registry,
    config.name,
    Counter<L>,
    () => new Counter({ ...config, registers: [registry] }),
  );
}

export function histogram<L extends string>(
  registry: Registry,
  config: Omit<HistogramConfiguration<L>, 'registers'>,
): Histogram<L> {
  return reuse(
    registry,
    config.name,
    Histogram<L>,
    () => new Histogram({ ...config, registers: [registry] }),
  );
}

export function gauge<L extends string>(
  registry: Registry,
  config: Omit<GaugeConfiguration<L>, 'registers'>,
): Gauge<L> {
  return reuse(
    registry,
    config.name,
    Gauge<L>,
    () => new Gauge({ ...config, registers: [registry] }),
  );
}

/**
 * Shares one read among everything that asks while it runs. prom-client collects every metric
 * of a scrape at once, so gauges that read their values through this see one snapshot per
 * scrape, not one per gauge.
 */
export function oncePerScrape<T>(read: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | undefined;
  return () => {
    pending ??= read().finally(() => {
      pending = undefined;
    });
    return pending;
  };
}
