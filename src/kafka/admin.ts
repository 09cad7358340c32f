/**
 * Topic administration: what Tidemark needs to create its event topics (partitions, replication,
 * `retention.ms=-1`), look at them, and remove them in tests.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Admin, ConfigResourceTypes } from '@platformatic/kafka';
import { InvalidArgumentError } from '../core/errors.ts';
import { clientOptions, type KafkaConnection } from './connection.ts';
import { KafkaOperationError, brokerErrorsOf, translateKafkaError } from './errors.ts';

/** A topic to create. */
export interface TopicSpec {
  readonly name: string;
  /** Number of partitions (default 1). Per-stream order holds within a partition. */
  readonly partitions?: number;
  /** Copies of each partition (default: the broker's `default.replication.factor`). */
  readonly replicationFactor?: number;
  /** Topic configs, such as `{ 'retention.ms': '-1', 'min.insync.replicas': '2' }`. */
  readonly configs?: Readonly<Record<string, string>>;
}

/** One partition of a described topic. */
export interface PartitionDescription {
  readonly partition: number;
  /** Broker id of the leader; -1 while there is none. */
  readonly leader: number;
  readonly replicas: readonly number[];
  readonly isr: readonly number[];
}

/** What {@link KafkaAdmin.describeTopic} answers. */
export interface TopicDescription {
  readonly name: string;
  readonly id: string;
  readonly partitions: readonly PartitionDescription[];
  /** The topic's effective configs (defaults included), by name. */
  readonly configs: Readonly<Record<string, string>>;
}

/** Facts about the cluster, from a Metadata round trip. */
export interface ClusterDescription {
  readonly clusterId: string;
  readonly controllerId: number;
  readonly brokers: readonly { nodeId: number; host: string; port: number }[];
}

/** Options of {@link KafkaAdmin.createTopic}. */
export interface CreateTopicOptions {
  /** An existing topic is not an error (its settings are not compared). Default false. */
  readonly ifNotExists?: boolean;
  /** How long to wait until every partition has a leader. Default 10000 ms. */
  readonly readyTimeoutMs?: number;
}

/** Topic administration over one connection. Close it when done. */
export class KafkaAdmin {
  readonly #admin: Admin;

  constructor(connection: KafkaConnection) {
    this.#admin = new Admin({ ...clientOptions(connection, 'admin'), retries: 3, retryDelay: 250 });
    // The library emits 'error' for background failures; without a listener Node would throw.
    this.#admin.on('error', () => {});
  }

  /** A Metadata round trip: proves the cluster answers and says who is in it. */
  async describeCluster(): Promise<ClusterDescription> {
    try {
      const metadata = await this.#admin.metadata({ forceUpdate: true });
      return {
        clusterId: metadata.id,
        controllerId: metadata.controllerId,
        brokers: [...metadata.brokers].map(([nodeId, b]) => ({
          nodeId,
          host: b.host,
          port: b.port,
        })),
      };
    } catch (error) {
      throw translateKafkaError(error, 'describeCluster');
    }
  }

  /**
   * Creates a topic and resolves once every partition has a leader, so that producing to it
   * right away works. Resolves true if it was created, false if it existed and `ifNotExists`.
   */
  async createTopic(spec: TopicSpec, options: CreateTopicOptions = {}): Promise<boolean> {
    const partitions = spec.partitions ?? 1;
    if (!Number.isInteger(partitions) || partitions < 1) {
      throw new InvalidArgumentError('partitions', `must be a positive integer, got ${partitions}`);
    }
    try {
      await this.#admin.createTopics({
        topics: [spec.name],
        partitions,
        replicas: spec.replicationFactor ?? -1,
        configs: Object.entries(spec.configs ?? {}).map(([name, value]) => ({ name, value })),
      });
    } catch (error) {
      if (options.ifNotExists && brokerErrorsOf(error).includes('TOPIC_ALREADY_EXISTS'))
        return false;
      throw translateKafkaError(error, 'createTopic');
    }
    await this.#waitForLeaders(spec.name, partitions, options.readyTimeoutMs ?? 10_000);
    return true;
  }

  // CreateTopics answers once the controller has recorded the topic; the broker that serves it
  // learns it from the metadata log a moment later. Polling Metadata is how Kafka's own tools
  // wait for that too.
  async #waitForLeaders(name: string, partitions: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const metadata = await this.#admin.metadata({ topics: [name], forceUpdate: true });
        const topic = metadata.topics.get(name);
        if (
          topic &&
          topic.partitionsCount === partitions &&
          topic.partitions.every((p) => p.leader >= 0)
        )
          return;
      } catch (error) {
        if (
          !brokerErrorsOf(error).some(
            (e) => e === 'UNKNOWN_TOPIC_OR_PARTITION' || e === 'LEADER_NOT_AVAILABLE',
          )
        ) {
          throw translateKafkaError(error, 'createTopic');
        }
      }
      if (Date.now() > deadline) {
        const why = `topic '${name}' has no leader for every partition after ${timeoutMs} ms`;
        throw new KafkaOperationError('createTopic', why, undefined, true);
      }
      await sleep(50);
    }
  }

  /** Partitions, leaders and effective configs of a topic; undefined if it does not exist. */
  async describeTopic(name: string): Promise<TopicDescription | undefined> {
    try {
      const metadata = await this.#admin.metadata({ topics: [name], forceUpdate: true });
      const topic = metadata.topics.get(name);
      if (!topic) return undefined;
      const [described] = await this.#admin.describeConfigs({
        resources: [{ resourceType: ConfigResourceTypes.TOPIC, resourceName: name }],
      });
      const configs: Record<string, string> = {};
      for (const entry of described?.configs ?? []) {
        if (entry.value !== null && entry.value !== undefined) configs[entry.name] = entry.value;
      }
      return {
        name,
        id: topic.id,
        partitions: topic.partitions.map((p, partition) => ({
          partition,
          leader: p.leader,
          replicas: [...p.replicas],
          isr: [...p.isr],
        })),
        configs,
      };
    } catch (error) {
      if (brokerErrorsOf(error).includes('UNKNOWN_TOPIC_OR_PARTITION')) return undefined;
      throw translateKafkaError(error, 'describeTopic');
    }
  }

  /**
   * Raises a topic's partition count to `count` (Kafka never lowers it) and waits until every
   * partition has a leader. Keys hash anew: most streams move to another partition, so
   * per-stream order across the change is lost for consumers (docs/kafka.md).
   */
  async addPartitions(name: string, count: number): Promise<void> {
    if (!Number.isInteger(count) || count < 1) {
      throw new InvalidArgumentError('count', `must be a positive integer, got ${count}`);
    }
    try {
      // assignments null (the protocol's nullable array): the controller places the replicas.
      // The library's type says array, but its encoder writes null as the null array.
      const assignments = null as unknown as [];
      await this.#admin.createPartitions({ topics: [{ name, count, assignments }] });
    } catch (error) {
      throw translateKafkaError(error, 'addPartitions');
    }
    await this.#waitForLeaders(name, count, 10_000);
  }

  /**
   * Deletes the records of the given partitions below the given offsets (Kafka's DeleteRecords,
   * what retention does segment by segment) and answers each partition's new log start offset.
   * Records deleted are gone for every reader; see docs/retention.md for what projections do.
   */
  async deleteRecords(
    name: string,
    before: ReadonlyMap<number, bigint>,
  ): Promise<Map<number, bigint>> {
    try {
      const deleted = await this.#admin.deleteRecords({
        topics: [
          { name, partitions: [...before].map(([partition, offset]) => ({ partition, offset })) },
        ],
      });
      const starts = new Map<number, bigint>();
      for (const topic of deleted) {
        for (const p of topic.partitions) starts.set(p.partition, p.lowWatermark);
      }
      return starts;
    } catch (error) {
      throw translateKafkaError(error, 'deleteRecords');
    }
  }

  /** Names of the non-internal topics. */
  async listTopics(): Promise<string[]> {
    try {
      return (await this.#admin.listTopics({ includeInternals: false })).sort();
    } catch (error) {
      throw translateKafkaError(error, 'listTopics');
    }
  }

  /** Deletes a topic. With `ifExists`, a missing topic is not an error. */
  async deleteTopic(name: string, options: { ifExists?: boolean } = {}): Promise<void> {
    try {
      await this.#admin.deleteTopics({ topics: [name] });
    } catch (error) {
      if (options.ifExists && brokerErrorsOf(error).includes('UNKNOWN_TOPIC_OR_PARTITION')) return;
      throw translateKafkaError(error, 'deleteTopic');
    }
  }

  async close(): Promise<void> {
    await this.#admin.close();
  }
}
