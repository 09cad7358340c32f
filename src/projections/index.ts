export { ProjectionRunner, type ProjectionRunnerOptions, type ProjectionStatus } from './runner.ts';
export {
  ProjectionApplier,
  defaultRetryPolicy,
  type ApplierOptions,
  type RetryPolicy,
  type SaveProgress,
} from './applier.ts';
export { ledger, ledgerMigrations, type ParkedEvent, type ProjectionRow } from './ledger.ts';
export { ReadModels, type ReadModelsOptions } from './read-models.ts';
