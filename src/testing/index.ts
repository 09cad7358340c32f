export {
  eventStoreContract,
  assertFailsWith,
  type EventStoreContractOptions,
  type EventStoreFixture,
  type TestApi,
} from './event-store-contract.ts';
export { deciderSpec, type DeciderOutcome, type DeciderSpec } from './decider-spec.ts';
export {
  projectionRunnerContract,
  type ProjectionFeedFixture,
  type ProjectionRunnerContractOptions,
} from './projection-runner-contract.ts';
export {
  subjectKeyStoreContract,
  type SubjectKeyStoreContractOptions,
  type SubjectKeyStoreFixture,
} from './subject-key-store-contract.ts';
