/**
 * Everything of the Kafka port, plumbing included (the producer, consumer, reader and record
 * decoding the relay and the Kafka feed are built on): for Tidemark's own code and tests. The
 * package exports only `index.ts`.
 */
export {
  clientOptions,
  kafkaConnectionFromEnv,
  parseBrokers,
  type KafkaConnection,
  type KafkaSaslMechanism,
} from './connection.ts';
export {
  KafkaOperationError,
  KafkaProducerFencedError,
  KafkaWireFormatError,
  isProducerFenced,
  kafkaErrorClasses,
  translateKafkaError,
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
  KafkaProducer,
  KafkaTransaction,
  type KafkaProducerOptions,
  type PartitionOffset,
  type ProducerRecord,
} from './producer.ts';
export {
  KafkaConsumer,
  offsetKey,
  type AssignmentChange,
  type ConsumedBatch,
  type ConsumedRecord,
  type KafkaConsumerOptions,
  type OffsetToCommit,
  type PartitionStart,
  type StartPosition,
  type TopicPartition,
} from './consumer.ts';
export {
  decodeByMarkers,
  decodePartition,
  type DecodedPartition,
  type PendingTransactions,
} from './records.ts';
export {
  KafkaReader,
  type FetchedRange,
  type Isolation,
  type KafkaReaderOptions,
} from './reader.ts';
export {
  CLOUDEVENTS_SPEC_VERSION,
  CONTENT_TYPE,
  WireHeaders,
  decodeEvent,
  encodeEvent,
  validateSource,
  type DecodeOptions,
  type EncodeOptions,
} from './wire.ts';
export {
  EventTopics,
  categoryOf,
  partitionFor,
  validateTopicName,
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
  readRelayProgressRecord,
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
