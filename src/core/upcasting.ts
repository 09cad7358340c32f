import { InvalidArgumentError, UpcastError } from './errors.ts';
import type { MessageMetadata, StoredEvent } from './messages.ts';

/**
 * Turns the data of one event type from schema version `fromVersion` into `fromVersion + 1`.
 * Upcasters of one type form a chain; reads apply the chain from the stored version to the
 * current one, so handlers only ever see the current shape.
 */
export interface Upcaster {
  readonly type: string;
  readonly fromVersion: number;
  readonly upcast: (data: unknown, metadata: MessageMetadata) => unknown;
}

/**
 * The upcasters of an application, checked once at construction: each type's chain starts at
 * version 1 and has no holes, so every stored version has a way to the current one.
 */
export class Upcasters {
  readonly #chains = new Map<string, Upcaster[]>();

  constructor(upcasters: readonly Upcaster[] = []) {
    for (const upcaster of upcasters) {
      if (typeof upcaster.type !== 'string' || upcaster.type === '') {
        throw new InvalidArgumentError('upcasters', 'every upcaster needs an event type');
      }
      if (!Number.isSafeInteger(upcaster.fromVersion) || upcaster.fromVersion < 1) {
        throw new InvalidArgumentError(
          'upcasters',
          `${upcaster.type}: fromVersion must be a positive integer, got ${String(upcaster.fromVersion)}`,
        );
      }
      const chain = this.#chains.get(upcaster.type) ?? [];
      chain.push(upcaster);
      this.#chains.set(upcaster.type, chain);
    }
    for (const [type, chain] of this.#chains) {
      chain.sort((a, b) => a.fromVersion - b.fromVersion);
      chain.forEach((upcaster, index) => {
        if (upcaster.fromVersion !== index + 1) {
          throw new InvalidArgumentError(
            'upcasters',
            `${type}: the chain must cover versions 1..${chain.length} once each; ` +
              `found fromVersion ${upcaster.fromVersion} at place ${index + 1}`,
          );
        }
      });
    }
  }

  /** The schema version new events of `type` are written with (1 when it has no upcasters). */
  currentVersion(type: string): number {
    return (this.#chains.get(type)?.length ?? 0) + 1;
  }

  /** True when nothing is registered: reads can skip upcasting altogether. */
  get isEmpty(): boolean {
    return this.#chains.size === 0;
  }

  /** The event with its data in the current shape. `schemaVersion` keeps the stored version. */
  upcast<T extends StoredEvent>(event: T): T {
    const chain = this.#chains.get(event.type);
    const current = (chain?.length ?? 0) + 1;
    if (event.schemaVersion === current) return event;
    if (!Number.isSafeInteger(event.schemaVersion) || event.schemaVersion < 1) {
      throw new UpcastError(event.type, event.schemaVersion, 'not a valid schema version');
    }
    if (event.schemaVersion > current) {
      throw new UpcastError(
        event.type,
        event.schemaVersion,
        `stored by a newer schema than this application knows (current is v${current})`,
      );
    }
    let data = event.data;
    for (let version = event.schemaVersion; version < current; version++) {
      const upcaster = chain![version - 1]!;
      try {
        data = upcaster.upcast(data, event.metadata);
      } catch (error) {
        throw new UpcastError(event.type, version, 'the upcaster threw', { cause: error });
      }
    }
    return { ...event, data };
  }
}

/** Shared empty registry for stores created without upcasters. */
export const noUpcasters = new Upcasters();
