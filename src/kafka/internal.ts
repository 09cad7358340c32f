/**
 * The whole Kafka port: the public surface (index.ts) plus the client plumbing the relay and the
 * Kafka feed are built on (producer, consumer, reader, record decoding, the mapping of the
 * library's options and errors). For Tidemark's own code and tests; the package exports only
 * index.ts.
 */
export * from './index.ts';
export { clientOptions } from './connection.ts';
export { translateKafkaError } from './errors.ts';
export {
  KafkaProducer,
  KafkaTransaction,
  type KafkaProducerOptions,
  type PartitionOffset,
} from './producer.ts';
export {
  KafkaConsumer,
  offsetKey,
  type AssignmentChange,
  type ConsumedBatch,
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
export { validateSource } from './wire.ts';
export { categoryOf, validateTopicName } from './topics.ts';
export { readRelayProgressRecord } from './relay.ts';
