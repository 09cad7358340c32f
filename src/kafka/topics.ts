/**
 * Which topic carries which events: one topic per category, the category being the part of the
 * stream id before its first `-` (`order-42` → `order`). Topics are created by Tidemark with
 * the partitions, replication and configs given here; event topics keep data forever
 * (`retention.ms=-1`) unless told otherwise (a bounded retention is safe for Kafka-fed
 * projections given a `backfill` store: docs/retention.md).
 */
import { murmur2 } from '@platformatic/kafka';
import { InvalidArgumentError } from '../core/errors.ts';
import { silentLogger, type Logger } from '../core/logger.ts';
import type { KafkaAdmin } from './admin.ts';

/** The category of a stream: its id up to the first `-` (the whole id when there is none). */
export function categoryOf(streamId: string): string {
  const dash = streamId.indexOf('-');
  return dash === -1 ? streamId : streamId.slice(0, dash);
}

/**
 * The partition Kafka's default (Java) partitioner picks for a key:
 * `toPositive(murmur2(key)) % partitions`. The relay's producer uses the same, so this says
 * where a stream's events are.
 */
export function partitionFor(key: string | Buffer, partitions: number): number {
  return (murmur2(Buffer.isBuffer(key) ? key : Buffer.from(key, 'utf8')) & 0x7fffffff) % partitions;
}

// Kafka's own rule for topic names (Topic.java): at most 249 of these characters.
const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;

/** Throws unless `name` is a legal Kafka topic name. */
export function validateTopicName(name: unknown, argument = 'topic'): asserts name is string {
  if (typeof name !== 'string' || !TOPIC_NAME.test(name) || name === '.' || name === '..') {
    throw new InvalidArgumentError(
      argument,
      `'${String(name)}' is not a Kafka topic name (1 to 249 of a-z A-Z 0-9 . _ -)`,
    );
  }
}

/** How topics are created when Tidemark creates them. */
export interface TopicSettings {
  /** Partitions of a new topic. Default 6. Never add partitions later: keys would move. */
  readonly partitions?: number;
  /** Copies of each partition. Default: the broker's `default.replication.factor`. */
  readonly replicationFactor?: number;
  /** Topic configs; merged over `{ 'retention.ms': '-1' }` for event topics. */
  readonly configs?: Readonly<Record<string, string>>;
}

/** A setting of an existing topic that differs from what {@link EventTopics} would create. */
export interface TopicMismatch {
  readonly topic: string;
  /** `partitions`, or a topic config such as `retention.ms`. */
  readonly setting: string;
  readonly expected: string;
  readonly actual: string;
}

/** Options of {@link EventTopics}. */
export interface EventTopicsOptions {
  /** Category → topic, e.g. `{ order: 'order-events' }`. */
  readonly categories?: Readonly<Record<string, string>>;
  /**
   * The topic of a category not listed in `categories`: a function of the category (for example
   * `` (c) => `${c}-events` ``), or `undefined` (the default) to publish only listed categories.
   */
  readonly others?: (category: string) => string;
  /** How Tidemark creates the topics. */
  readonly settings?: TopicSettings;
}

/** The routing of events to topics. Built once; {@link topicFor} is on the relay's hot path. */
export class EventTopics {
  readonly #categories: Map<string, string>;
  readonly #others: ((category: string) => string) | undefined;
  readonly #cache = new Map<string, string | undefined>();
  readonly settings: Required<Pick<TopicSettings, 'partitions'>> & TopicSettings;

  constructor(options: EventTopicsOptions) {
    this.#categories = new Map(Object.entries(options.categories ?? {}));
    for (const [category, topic] of this.#categories) {
      validateTopicName(topic, `topics.categories.${category}`);
    }
    this.#others = options.others;
    if (this.#categories.size === 0 && !this.#others) {
      throw new InvalidArgumentError('topics', 'map at least one category to a topic');
    }
    const partitions = options.settings?.partitions ?? 6;
    if (!Number.isSafeInteger(partitions) || partitions < 1) {
      throw new InvalidArgumentError('topics.settings.partitions', 'must be a positive integer');
    }
    const replication = options.settings?.replicationFactor;
    if (replication !== undefined && (!Number.isSafeInteger(replication) || replication < 1)) {
      throw new InvalidArgumentError(
        'topics.settings.replicationFactor',
        'must be a positive integer',
      );
    }
    this.settings = { ...options.settings, partitions };
  }

  /** The topics named up front (the `categories` map), which a relay creates at start. */
  get listed(): string[] {
    return [...new Set(this.#categories.values())];
  }

  /** The topic of a stream's events; undefined when its category is not published. */
  topicFor(streamId: string): string | undefined {
    const category = categoryOf(streamId);
    if (this.#cache.has(category)) return this.#cache.get(category);
    let topic = this.#categories.get(category);
    if (topic === undefined && this.#others) {
      topic = this.#others(category);
      // A category can hold any character a stream id can: such a category stays unpublished.
      if (!TOPIC_NAME.test(topic)) topic = undefined;
    }
    // Bounded: categories are few in practice, but a stream-id scheme without dashes is not.
    if (this.#cache.size >= 10_000) this.#cache.clear();
    this.#cache.set(category, topic);
    return topic;
  }

  /**
   * Creates the topics that do not exist yet, with these settings and `retention.ms=-1`
   * (keep forever) unless the settings' configs say otherwise. An existing topic is left as it
   * is, but compared with these settings: every difference (partition count, a config such as
   * `retention.ms`) is logged as a warning and returned, never accepted silently. Whoever
   * publishes decides what a difference means (the relay refuses a topic whose partition count
   * moved from the one it recorded).
   */
  async ensure(
    admin: KafkaAdmin,
    topics: readonly string[] = this.listed,
    options: { logger?: Logger } = {},
  ): Promise<TopicMismatch[]> {
    const mismatches: TopicMismatch[] = [];
    const configs: Record<string, string> = { 'retention.ms': '-1', ...this.settings.configs };
    for (const name of topics) {
      const created = await admin.createTopic(
        {
          name,
          partitions: this.settings.partitions,
          ...(this.settings.replicationFactor !== undefined
            ? { replicationFactor: this.settings.replicationFactor }
            : {}),
          configs,
        },
        { ifNotExists: true },
      );
      if (created) continue;
      const described = await admin.describeTopic(name);
      if (!described) continue; // deleted meanwhile: the next ensure creates it
      const found: TopicMismatch[] = [];
      if (described.partitions.length !== this.settings.partitions) {
        found.push({
          topic: name,
          setting: 'partitions',
          expected: String(this.settings.partitions),
          actual: String(described.partitions.length),
        });
      }
      for (const [setting, expected] of Object.entries(configs)) {
        const actual = described.configs[setting];
        if (actual !== undefined && actual !== expected)
          found.push({ topic: name, setting, expected, actual });
      }
      for (const mismatch of found) {
        (options.logger ?? silentLogger).warn(
          { ...mismatch },
          'topic exists with another setting than configured; left as it is',
        );
      }
      mismatches.push(...found);
    }
    return mismatches;
  }
}
