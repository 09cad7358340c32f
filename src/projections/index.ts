export { ProjectionRunner, type ProjectionRunnerOptions, type ProjectionStatus } from './runner.ts';
export { ProjectionHost, type ProjectionHostOptions } from './host.ts';
export {
  ProjectionApplier,
  defaultRetryPolicy,
  type ApplierOptions,
  type RetryPolicy,
  type SaveProgress,
} from './applier.ts';
export { ledger, ledgerMigrations, type ParkedEvent, type ProjectionRow } from './ledger.ts';
export { ReadModels, type ReadModelsOptions, type StreamSignal } from './read-models.ts';
export {
  dropRetired,
  physicalTables,
  registerRebuild,
  resetProjection,
  versionsToRun,
} from './versions.ts';
