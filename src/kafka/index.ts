/**
 * `tidemark/kafka`: Tidemark's port onto Apache Kafka (@platformatic/kafka underneath), as much
 * of it as an application builds with: the connection, topics, the relay and its operations,
 * the Kafka feed for projections, the wire format (for consumers outside Tidemark) and the
 * errors to catch. The client plumbing under them stays internal (internal.ts).
 * See docs/kafka-client-notes.md for what the port relies on in the library.
 */
export {
  kafkaConnectionFromEnv,
  parseBrokers,
  type KafkaConnection,
  type KafkaSaslMechanism,
} from './connection.ts';
export {
  KafkaOperationError,
  KafkaProducerFencedError,
  KafkaWireFormatError,
  KafkaHistoryTruncatedError,
  isProducerFenced,
  kafkaErrorClasses,
  type RecordLocation,
} from './errors.ts';
export {
  KafkaAdmin,
  type ClusterDescription,
  type CreateTopicOptions,
  type PartitionDescription,
  type TopicDescription,
  type TopicSpec,
} from './admin.ts';
export {
  EventTopics,
  partitionFor,
  type EventTopicsOptions,
  type TopicMismatch,
  type TopicSettings,
} from './topics.ts';
export {
  DEFAULT_MAX_EVENT_BYTES,
  DEFAULT_PROGRESS_TOPIC,
  KafkaRelay,
  inspectRelay,
  readRelayProgress,
  rebaseRelay,
  retryRelayParked,
  skipRelayParked,
  type KafkaRelayOptions,
  type ReadProgressOptions,
  type RelayInspection,
  type RelayOperationOptions,
  type RelayParkedEvent,
  type RelayProgress,
  type RelayRefusal,
  type RelayRefusalReason,
  type RelayState,
  type RelayStatus,
  type RelayStoreCheck,
  type ReleaseResult,
} from './relay.ts';
export { INVALID_RECORD_TYPE, kafkaFeed, type KafkaFeedOptions } from './kafka-feed.ts';
export type { KafkaBackfillOptions } from './backfill.ts';
export {
  CLOUDEVENTS_SPEC_VERSION,
  CONTENT_TYPE,
  WireHeaders,
  decodeEvent,
  encodeEvent,
  type DecodeOptions,
  type EncodeOptions,
} from './wire.ts';
// The record shapes the wire functions take and give (types only; the clients stay internal).
export type { ProducerRecord } from './producer.ts';
export type { ConsumedRecord } from './consumer.ts';
