export { ProjectionRunner, type ProjectionRunnerOptions } from './runner.ts';
export { ProjectionHost, type ProjectionHostOptions } from './host.ts';
export { ProjectionEngine, type ProjectionEngineOptions, type ProjectionStatus } from './engine.ts';
export {
  type Feed,
  type FeedBatch,
  type FeedHost,
  type FeedKind,
  type FeedLag,
  type FeedReader,
  type PartitionStatus,
  type Slot,
  type SlotWork,
} from './feed.ts';
export { storeFeed, type StoreFeedOptions } from './store-feed.ts';
export {
  ProgressMovedError,
  ProjectionApplier,
  defaultRetryPolicy,
  type ApplierOptions,
  type RetryPolicy,
} from './applier.ts';
export {
  ledger,
  ledgerMigrations,
  partitionKey,
  physicalTable,
  physicalTables,
  projectionContext,
  type ParkReason,
  type ParkedEvent,
  type ProjectionRow,
} from './ledger.ts';
export { ReadModels, type ConsistencySource, type ReadModelsOptions } from './read-models.ts';
export { dropRetired, registerRebuild, resetProjection, versionsToRun } from './versions.ts';
export {
  listParked,
  projectionStatus,
  rebuildProjection,
  retryParked,
  skipParked,
  type ProjectionOperations,
  type RebuildOptions,
  type RebuildProgress,
  type RebuildResult,
  type VersionStatus,
} from './operations.ts';
