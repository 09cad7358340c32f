import { decisionEvents, type Decider } from './decider.ts';
import {
  InvalidArgumentError,
  StreamArchivedError,
  StreamNotFoundError,
  isTidemarkError,
} from './errors.ts';
import {
  ANY,
  NO_STREAM,
  STREAM_EXISTS,
  assertExpectedVersion,
  checkExpectedVersion,
  type ExpectedVersion,
} from './expected-version.ts';
import { silentLogger, type Logger } from './logger.ts';
import type { Command, Event, MessageMetadata, NewEvent, RecordedEvent } from './messages.ts';
import { validateStreamId } from './preparation.ts';
import type { EventStore, SnapshotStore } from './store.ts';

/** When and how the handler snapshots a stream's state. */
export interface SnapshotPolicy<State> {
  store: SnapshotStore;
  /** Take a snapshot each time the stream's version crosses a multiple of this. */
  every: number;
  /**
   * The schema version of the state. Bump it whenever the state's shape changes: snapshots of
   * any other version are ignored (the state is folded from events instead), never misread.
   */
  stateVersion: number;
  /** State to JSON-ready data. Default: the state as it is. */
  toSnapshot?: (state: State) => unknown;
  /** Stored data back to state. Default: the data as it is. */
  fromSnapshot?: (data: unknown) => State;
}

export interface CommandHandlerOptions<State, C extends Command, E extends Event> {
  decider: Decider<State, C, E>;
  store: EventStore;
  snapshots?: SnapshotPolicy<State>;
  /**
   * How many times a command is decided again on fresh state after a concurrent write won the
   * race, when the caller did not pin a version. Default 5.
   */
  maxRetries?: number;
  logger?: Logger;
}

export interface HandleOptions {
  /**
   * Pins the version the caller decided against (from an `If-Match`, say). A number or
   * `STREAM_EXISTS` on a stream with no events fails with `StreamNotFoundError`; a stream at
   * another version, or one that moves before the append, fails with
   * `WrongExpectedVersionError` and is not retried. Without it (or with `ANY`), the handler
   * appends against the version it loaded and retries on conflict.
   */
  expectedVersion?: ExpectedVersion;
  /** Merged into the metadata of every event the command causes. */
  metadata?: MessageMetadata;
}

/** A stream's state as loaded: folded from its snapshot and the events after it. */
export interface LoadedState<State> {
  state: State;
  /** The stream's version (0: no events). */
  version: number;
  /** Position of the last event folded from the log, when one was read. */
  position: number | undefined;
  /** The snapshot version the load started from, if any. */
  fromSnapshot: number | undefined;
}

export interface CommandResult<State, E extends Event> {
  streamId: string;
  /** The events the command caused, as recorded. Empty when the decision was to do nothing. */
  events: RecordedEvent<E>[];
  /** The stream's version after the command. */
  nextExpectedVersion: number;
  /** Global position of the last new event; `undefined` when there was none. */
  position: number | undefined;
  /** The state after the command. */
  state: State;
}

/**
 * Runs commands against a decider: load (snapshot + tail), decide, append with the expected
 * version, retry on a lost race unless the caller pinned the version.
 */
export class CommandHandler<State, C extends Command, E extends Event> {
  readonly #decider: Decider<State, C, E>;
  readonly #store: EventStore;
  readonly #snapshots: SnapshotPolicy<State> | undefined;
  readonly #maxRetries: number;
  readonly #logger: Logger;
  /**
   * The last command queued per stream. Commands on one stream run one after the other in this
   * process, so they never race each other; retries are left for writers in other processes.
   */
  readonly #queues = new Map<string, Promise<unknown>>();

  constructor(options: CommandHandlerOptions<State, C, E>) {
    const { decider, store, snapshots, maxRetries = 5, logger = silentLogger } = options;
    if (!decider || typeof decider.decide !== 'function' || typeof decider.evolve !== 'function') {
      throw new InvalidArgumentError('decider', 'needs initialState, evolve and decide functions');
    }
    if (typeof decider.initialState !== 'function') {
      throw new InvalidArgumentError(
        'decider.initialState',
        'must be a function returning the state',
      );
    }
    if (!Number.isSafeInteger(maxRetries) || maxRetries < 0) {
      throw new InvalidArgumentError('maxRetries', 'must be a non-negative integer');
    }
    if (snapshots) {
      if (!Number.isSafeInteger(snapshots.every) || snapshots.every < 1) {
        throw new InvalidArgumentError('snapshots.every', 'must be a positive integer');
      }
      if (!Number.isSafeInteger(snapshots.stateVersion) || snapshots.stateVersion < 1) {
        throw new InvalidArgumentError('snapshots.stateVersion', 'must be a positive integer');
      }
    }
    this.#decider = decider;
    this.#store = store;
    this.#snapshots = snapshots;
    this.#maxRetries = maxRetries;
    this.#logger = logger;
  }

  /**
   * The decider this handler runs. Read-only tools fold a stream with it (an admin console's
   * state at a version) without loading through the handler.
   */
  get decider(): Decider<State, C, E> {
    return this.#decider;
  }

  /** Loads a stream's current state. */
  async load(streamId: string): Promise<LoadedState<State>> {
    validateStreamId(streamId);
    const decider = this.#decider;
    let state = decider.initialState();
    let version = 0;
    let fromSnapshot: number | undefined;
    const policy = this.#snapshots;
    // One read for snapshot and tail when the store offers it and keeps the snapshots itself.
    const together =
      policy && (policy.store as unknown) === this.#store && this.#store.readFromSnapshot
        ? await this.#store.readFromSnapshot<E>(streamId, policy.stateVersion)
        : undefined;
    if (policy) {
      const snapshot = together ? together.snapshot : await policy.store.readSnapshot(streamId);
      if (snapshot && snapshot.stateVersion === policy.stateVersion) {
        state = policy.fromSnapshot
          ? policy.fromSnapshot(snapshot.state)
          : (snapshot.state as State);
        version = snapshot.streamVersion;
        fromSnapshot = version;
      }
    }
    const tail =
      together?.events ?? (await this.#store.readStream<E>(streamId, { fromVersion: version + 1 }));
    let position: number | undefined;
    for (const event of tail) {
      state = decider.evolve(state, event as unknown as E);
      version = event.streamVersion;
      position = event.position;
    }
    return { state, version, position, fromSnapshot };
  }

  /**
   * The outcome of an earlier execution, rebuilt from its recorded events: those of `streamId`
   * whose metadata has `metadataKey` equal to `value` (an idempotency key, say). For a caller
   * that never heard back from that execution (its process died after the append). `undefined`
   * when no event matches; otherwise `nextExpectedVersion`, `position` and `state` are as they
   * were right after the last matching event. Reads the whole stream.
   */
  async findExecution(
    streamId: string,
    metadataKey: string,
    value: string,
  ): Promise<CommandResult<State, E> | undefined> {
    validateStreamId(streamId);
    const decider = this.#decider;
    let state = decider.initialState();
    let matched: RecordedEvent<E>[] = [];
    let after: { state: State; version: number; position: number } | undefined;
    for (const event of await this.#store.readStream<E>(streamId)) {
      state = decider.evolve(state, event as unknown as E);
      if (event.metadata?.[metadataKey] === value) {
        matched = [...matched, event];
        after = { state, version: event.streamVersion, position: event.position };
      }
    }
    if (!after) return undefined;
    return {
      streamId,
      events: matched,
      nextExpectedVersion: after.version,
      position: after.position,
      state: after.state,
    };
  }

  /** Decides `command` on the stream's state and appends what it causes. */
  async handle(
    streamId: string,
    command: C,
    options: HandleOptions = {},
  ): Promise<CommandResult<State, E>> {
    validateStreamId(streamId);
    const pinned = options.expectedVersion ?? ANY;
    assertExpectedVersion(pinned);
    const previous = this.#queues.get(streamId);
    const start = () => this.#handle(streamId, command, options, pinned);
    const run = previous ? previous.then(start, start) : start();
    this.#queues.set(streamId, run);
    try {
      return await run;
    } finally {
      if (this.#queues.get(streamId) === run) this.#queues.delete(streamId);
    }
  }

  async #handle(
    streamId: string,
    command: C,
    options: HandleOptions,
    pinned: ExpectedVersion,
  ): Promise<CommandResult<State, E>> {
    const retry = pinned === ANY || pinned === NO_STREAM || pinned === STREAM_EXISTS;
    for (let attempt = 0; ; attempt++) {
      const loaded = await this.load(streamId);
      if (
        loaded.version === 0 &&
        (pinned === STREAM_EXISTS || (typeof pinned === 'number' && pinned > 0))
      ) {
        throw new StreamNotFoundError(streamId);
      }
      checkExpectedVersion(streamId, pinned, loaded.version);
      // An archived stream still loads (from the archive) but takes no more events: refuse
      // before deciding, so the answer does not depend on what the domain would say.
      if (loaded.version > 0 && (await this.#store.isArchived?.(streamId))) {
        throw new StreamArchivedError(streamId);
      }

      const decided = decisionEvents(this.#decider.decide(command, loaded.state));
      if (decided.length === 0) {
        return {
          streamId,
          events: [],
          nextExpectedVersion: loaded.version,
          position: undefined,
          state: loaded.state,
        };
      }
      const metadata = { ...command.metadata, ...options.metadata };
      const toAppend: NewEvent<E>[] = decided.map((event) => ({
        type: event.type,
        data: event.data,
        metadata: event.metadata ? { ...metadata, ...event.metadata } : metadata,
      }));
      try {
        const appended = await this.#store.appendToStream<E>(streamId, toAppend, {
          expectedVersion: loaded.version === 0 ? NO_STREAM : loaded.version,
        });
        let state = loaded.state;
        for (const event of decided) state = this.#decider.evolve(state, event);
        await this.#maybeSnapshot(streamId, loaded.version, appended.nextExpectedVersion, state);
        return {
          streamId,
          events: appended.events,
          nextExpectedVersion: appended.nextExpectedVersion,
          position: appended.position,
          state,
        };
      } catch (error) {
        if (
          !retry ||
          attempt >= this.#maxRetries ||
          !isTidemarkError(error, 'wrong_expected_version')
        ) {
          throw error;
        }
        this.#logger.debug(
          { streamId, attempt, command: command.type },
          'version conflict, deciding again',
        );
      }
    }
  }

  async #maybeSnapshot(
    streamId: string,
    before: number,
    after: number,
    state: State,
  ): Promise<void> {
    const policy = this.#snapshots;
    if (!policy || Math.floor(before / policy.every) === Math.floor(after / policy.every)) return;
    try {
      await policy.store.writeSnapshot({
        streamId,
        streamVersion: after,
        stateVersion: policy.stateVersion,
        state: policy.toSnapshot ? policy.toSnapshot(state) : state,
      });
    } catch (error) {
      // A snapshot is a cache: the command has succeeded, and the next load folds events instead.
      this.#logger.warn({ streamId, version: after, err: error }, 'snapshot not written');
    }
  }
}
