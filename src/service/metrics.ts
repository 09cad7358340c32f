/**
 * The metrics of a service's runners: projections (per projection, and per Kafka partition) and
 * the relay. Gauges read a status snapshot when scraped; every gauge of one scrape shares one
 * snapshot (`oncePerScrape`), so a scrape costs one status read, not one per gauge.
 *
 * The names are a contract with dashboards and alerts (docs/operations.md); they are the names
 * the Orders example exported before they moved here.
 */
import type { ProjectionStatus } from '../projections/index.ts';
import type { RelayStatus } from '../kafka/relay.ts';
import { gauge, oncePerScrape, type Registry } from '../metrics.ts';

/** What one scrape sees. */
export interface RunnerSnapshot {
  projections: readonly ProjectionStatus[];
  relay: RelayStatus | undefined;
}

type Pick = (status: ProjectionStatus) => number;
type RelayPick = (status: RelayStatus) => number;

const PROJECTION_GAUGES: [name: string, help: string, pick: Pick][] = [
  [
    'tidemark_projection_position',
    'Highest global log position applied, per projection.',
    (s) => s.position,
  ],
  [
    'tidemark_projection_lag_events',
    'Events (store-fed) or records (Kafka-fed) not applied yet.',
    (s) => s.lagEvents,
  ],
  [
    'tidemark_projection_lag_seconds',
    'Age of the oldest event not yet applied.',
    (s) => s.lagSeconds,
  ],
  [
    'tidemark_projection_parked_events',
    'Events parked (dead letters) per projection.',
    (s) => s.parked,
  ],
  [
    'tidemark_projection_gap_streams',
    'Streams held behind a missing version (a gap) per projection.',
    (s) => s.gaps,
  ],
  [
    'tidemark_projection_up',
    '1 while the projection runs without a retried error, 0 otherwise.',
    (s) => (s.state !== 'stopped' && s.lastError === undefined ? 1 : 0),
  ],
];

const RELAY_GAUGES: [name: string, help: string, pick: RelayPick][] = [
  [
    'tidemark_relay_position',
    'Last global log position published to Kafka (committed).',
    (s) => s.position,
  ],
  [
    'tidemark_relay_backlog_events',
    'Positions between the store head and what the relay has published.',
    (s) => s.backlog,
  ],
  [
    'tidemark_relay_up',
    '1 while the relay runs, 0 when retrying, stopped, fenced or refused.',
    (s) => (s.state === 'running' ? 1 : 0),
  ],
  [
    'tidemark_relay_refused',
    '1 while the relay refuses to publish (another store, past the head, partitions changed).',
    (s) => (s.state === 'refused' ? 1 : 0),
  ],
  [
    'tidemark_relay_parked_streams',
    'Streams the relay holds back: an event too big to publish, and the events after it.',
    (s) => s.parked.length,
  ],
];

export interface RunnerMetricsOptions {
  /** Reads the snapshot (called once per scrape). */
  snapshot: () => Promise<RunnerSnapshot>;
  projections: boolean;
  relay: boolean;
  /** Kafka-fed projections: lag per partition too. */
  partitions: boolean;
}

/** Registers the runner gauges on a registry. */
export function registerRunnerMetrics(registry: Registry, options: RunnerMetricsOptions): void {
  const snapshot = oncePerScrape(options.snapshot);
  if (options.projections) {
    for (const [name, help, pick] of PROJECTION_GAUGES) {
      gauge(registry, {
        name,
        help,
        labelNames: ['projection', 'version'],
        async collect() {
          const { projections } = await snapshot();
          this.reset();
          for (const s of projections)
            this.set({ projection: s.name, version: s.version }, pick(s));
        },
      });
    }
  }
  if (options.relay) {
    for (const [name, help, pick] of RELAY_GAUGES) {
      gauge(registry, {
        name,
        help,
        labelNames: ['relay'],
        async collect() {
          const { relay } = await snapshot();
          this.reset();
          if (relay) this.set({ relay: relay.name }, pick(relay));
        },
      });
    }
  }
  if (options.partitions) {
    gauge(registry, {
      name: 'tidemark_projection_partition_lag_events',
      help: 'Offsets between the stored position and the end of each Kafka partition.',
      labelNames: ['projection', 'topic', 'partition'],
      async collect() {
        const { projections } = await snapshot();
        this.reset();
        for (const s of projections)
          for (const p of s.partitions ?? [])
            this.set({ projection: s.name, topic: p.topic, partition: p.partition }, p.lag);
      },
    });
  }
}
