/**
 * The store against a server that goes away under load: a clean stop, then a crash, each
 * followed by a start. The store must come back by itself, and every append it acknowledged
 * must be there afterwards, once. Runs a PostgreSQL of its own (stopping the shared one would
 * disturb other test files).
 */
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { isTidemarkError, type Logger } from 'tidemark';
import { PostgresEventStore } from 'tidemark/postgres';
import { startPrivatePostgres, type PrivatePostgres } from '../support/private-postgres.ts';
// Not used for the data: naming it makes `npm test` provision PostgreSQL (the server binaries
// this file runs privately) before the file starts.
import { postgresUrl } from '../support/services.ts';

let server: PrivatePostgres;
before(async () => {
  postgresUrl();
  server = await startPrivatePostgres('restart');
});
after(() => server?.destroy());

/** Resolves once `emitter` has emitted `event` and `check()` holds. */
async function until(emitter: EventEmitter, event: string, check: () => boolean): Promise<void> {
  while (!check()) await once(emitter, event);
}

describe('PostgresEventStore across server restarts', () => {
  it(
    'recovers by itself after a stop and after a crash under load, losing nothing acknowledged',
    { timeout: 180_000 },
    async () => {
      const signals = new EventEmitter();
      signals.setMaxListeners(50);
      const log = (_: object, msg?: string) => void signals.emit('log', msg);
      const logger: Logger = { debug: () => {}, info: log, warn: log, error: log };
      const store = await PostgresEventStore.connect({
        connectionString: server.url,
        schema: 'restart',
        poolSize: 4,
        reconnectWindowMs: 30_000,
        // Only LISTEN may deliver the cross-store wake-up checked at the end.
        pollIntervalMs: 60_000,
        logger,
      });
      const heard = new Set<number>();
      const stopListening = store.onAppended((position) => {
        heard.add(position);
        signals.emit('heard');
      });

      const acked = new Map<string, number>();
      const failures: unknown[] = [];
      let stopping = false;
      let inFlight = 0;
      const writer = async (w: number) => {
        for (let k = 0; !stopping; k++) {
          inFlight++;
          signals.emit('entered');
          try {
            const events = Array.from({ length: 1 + (k % 3) }, (_, j) => ({
              type: 'Tick',
              data: { w, k, j },
            }));
            const result = await store.appendToStream(`writer-${w}`, events);
            for (const event of result.events) acked.set(event.eventId, event.position);
          } catch (error) {
            failures.push(error);
          }
          inFlight--;
          signals.emit('acked');
        }
      };
      const writers = Promise.all(Array.from({ length: 4 }, (_, w) => writer(w)));
      const cycle = async (mode: 'fast' | 'immediate') => {
        const before = acked.size;
        await until(signals, 'acked', () => acked.size >= before + 100);
        const relistened = once(signals, 'relistened');
        const onLog = (msg: string) => {
          // Any LISTEN that succeeds after the stop is one made after the restart.
          if (msg === 'listening for appends') signals.emit('relistened');
        };
        signals.on('log', onLog);
        await server.stop(mode);
        // Every writer is now inside an append that cannot finish until the server is back.
        await until(signals, 'entered', () => inFlight === 4);
        await server.start();
        const restartedAt = acked.size;
        await until(signals, 'acked', () => acked.size >= restartedAt + 100);
        await relistened;
        signals.off('log', onLog);
      };

      await cycle('fast');
      await cycle('immediate');

      // LISTEN came back: an append of another store (another process, as far as the server
      // knows) wakes this one's listener, long before its poll would.
      const other = await PostgresEventStore.connect({
        connectionString: server.url,
        schema: 'restart',
      });
      const theirs = await other.appendToStream('other', [{ type: 'Tick', data: {} }]);
      await until(signals, 'heard', () => heard.has(theirs.position));
      await other.close();

      stopping = true;
      await writers;
      stopListening();

      // No append failed: those caught by the outage waited for the server and went through.
      assert.deepEqual(
        failures.map((f) => (isTidemarkError(f) ? f.code : String(f))),
        [],
      );
      // Everything acknowledged is in the log, once, where the append said it was.
      const log_: Map<string, number> = new Map();
      for (let position = 0; ;) {
        const batch = await store.readAll({ after: position, maxCount: 1000 });
        if (batch.length === 0) break;
        for (const event of batch) {
          assert.ok(!log_.has(event.eventId), `${event.eventId} twice`);
          log_.set(event.eventId, event.position);
        }
        position = batch[batch.length - 1]!.position;
      }
      for (const [eventId, position] of acked) assert.equal(log_.get(eventId), position, eventId);
      // Each writer's stream is whole: versions 1..n with no holes.
      for (let w = 0; w < 4; w++) {
        const stream = await store.readStream(`writer-${w}`);
        assert.deepEqual(
          stream.map((e) => e.streamVersion),
          stream.map((_, i) => i + 1),
        );
      }
      assert.ok(acked.size >= 300, `only ${acked.size} events acknowledged`);
      await store.close();
    },
  );
});
