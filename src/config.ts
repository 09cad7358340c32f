import type { ArchivePolicy, PersonalData, ProjectionDefinition, Upcasters } from './core/index.ts';

/**
 * What the `tidemark` CLI needs to know of an application, exported (as default) by its
 * `tidemark.config.ts`: the projection definitions (for rebuilds and dead-letter retries) and
 * the upcasters (so the CLI reads old events in their current shape).
 */
export interface TidemarkConfig {
  projections?: readonly ProjectionDefinition[];
  upcasters?: Upcasters;
  /**
   * The application's personal data declaration: the CLI then reads sealed fields in clear (or
   * redacted), and rebuilds and dead-letter retries give projections what the service would.
   */
  personalData?: PersonalData;
  /** The Kafka relay, for `tidemark relay status`: its name (transactional id `tidemark-relay-<name>`). */
  relay?: { name?: string; progressTopic?: string };
  /** Kafka-fed projections, for `tidemark projections rebuild --from kafka`. */
  kafka?: {
    /** The event topics the projections read. */
    topics?: readonly string[];
    /** Prefix of the projections' consumer groups (`<prefix>-projection-<name>-v<version>`). */
    groupPrefix?: string;
    /** The `ce_source` of the application's relays: records from any other are parked as foreign. */
    sources?: readonly string[];
    /**
     * Category → topic, as the relay routes them (e.g. `{ order: 'order-events' }`). With it, a
     * rebuild from a topic whose retention dropped its beginning fills that part from the store
     * (docs/retention.md); without it, such a rebuild stops with `kafka_history_truncated`.
     */
    categories?: Readonly<Record<string, string>>;
  };
  /** The archive of old streams, for `tidemark streams archive` (docs/retention.md). */
  archive?: {
    /** The directory of segment files (else `--archive DIR` or `TIDEMARK_ARCHIVE_DIR`). */
    directory?: string;
    /** Which old streams to move (default: every stream old enough). */
    policy?: ArchivePolicy;
    /** Only streams whose id starts with this. */
    prefix?: string;
  };
}

/** Types a config object. */
export function defineConfig(config: TidemarkConfig): TidemarkConfig {
  return config;
}
