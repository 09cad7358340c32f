/**
 * Deferred writes (a projection's `deferWrites`) on real PostgreSQL: the writes of a plain
 * per-event projection go to the database many per round trip, and the read model is the same
 * as without; a read sees the writes before it; a statement that fails parks its own event and
 * nothing of it is half-applied; parameters of every kind come out as the driver would have
 * sent them. The placeholder scanner and literals are checked on their own too.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  ProjectionRunner,
  defineProjection,
  isTidemarkError,
  ledger,
  type ProjectionDefinition,
  type RecordedEvent,
} from 'tidemark';
import { PostgresEventStore, PostgresProjectionSink } from 'tidemark/postgres';
import { literalOf, templateOf } from '../../src/postgres/sql-executor.ts';
import { DeferredWrites, canDefer } from '../../src/projections/deferred-writes.ts';
import { schemaSource, type SchemaSource } from '../support/pg-schemas.ts';
import { createTestDatabase } from '../support/services.ts';

let source: SchemaSource;
before(async () => {
  source = schemaSource(await createTestDatabase('deferred'));
});
after(() => source.drop());

/** A projection keeping, per event, a row of values of many kinds, and a running count. */
function kinds(options: { deferWrites: boolean; poison?: (e: RecordedEvent) => boolean }) {
  const seenCounts: number[] = [];
  const definition: ProjectionDefinition = defineProjection({
    name: 'kinds',
    version: 1,
    handles: ['Noted'],
    tables: ['kinds', 'total'],
    deferWrites: options.deferWrites,
    async init({ sql, table }) {
      await sql.execute(`CREATE TABLE ${table('kinds')} (
        event_id text PRIMARY KEY, n bigint, big numeric, flag boolean, note text,
        at timestamptz, bytes bytea, doc jsonb, nothing text, tags text[])`);
      await sql.execute(`CREATE TABLE ${table('total')} (id int PRIMARY KEY, n int NOT NULL)`);
    },
    async apply(event, { sql, table }) {
      const data = event.data as { i: number; note: string };
      // A read before the writes: with deferred writes it must still see every earlier event's.
      const [row] = await sql.query<{ n: number }>(`SELECT n FROM ${table('total')} WHERE id = 1`);
      seenCounts.push(row?.n ?? 0);
      await sql.execute(
        `INSERT INTO ${table('total')} (id, n) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET n = ${table('total')}.n + 1`,
      );
      // '$1' in a string literal, "$2" as an identifier and -- $3 in a comment are not parameters.
      await sql.execute(
        `INSERT INTO ${table('kinds')} (event_id, n, big, flag, note, at, bytes, doc, nothing, tags)
         VALUES ($1, $2, $3, $4, $5 /* $9 */, $6, $7, $8, $9, $10) -- $1`,
        [
          event.eventId,
          data.i,
          10n ** 20n + BigInt(data.i),
          data.i % 2 === 0,
          data.note,
          new Date(Date.UTC(2026, 11, 5, 1, 2, 3, data.i)),
          Buffer.from([0, 1, 2, 255, data.i]),
          { i: data.i, note: data.note, nested: { list: [1, 'two', null] } },
          undefined,
          ['a', `b${data.i}`],
        ],
      );
      if (options.poison?.(event)) {
        // Fails on the server, when the held statements are sent.
        await sql.execute(`INSERT INTO ${table('total')} (id, n) VALUES ($1, NULL)`, [2]);
      }
    },
  });
  return { definition, seenCounts };
}

const notes = ['plain', "it's", 'back\\slash', 'dollar $1 and $$', 'ünïcödé ✓', "E'x'"];

async function setup(label: string) {
  const schema = source.schema(label);
  const connection = { connectionString: source.db.url, schema, poolSize: 4 };
  const store = await PostgresEventStore.connect(connection);
  const sink = await PostgresProjectionSink.connect(connection);
  return {
    store,
    sink,
    async close() {
      await sink.close();
      await store.close();
    },
  };
}

async function runOver(
  label: string,
  projection: ReturnType<typeof kinds>,
  events: number,
  batchSize = 500,
) {
  const { store, sink, close } = await setup(label);
  await store.appendToStream(
    's-1',
    Array.from({ length: events }, (_, i) => ({
      type: 'Noted',
      data: { i, note: notes[i % notes.length]! },
    })),
  );
  const runner = new ProjectionRunner({
    projection: projection.definition,
    store,
    sink,
    batchSize,
    retry: { attempts: 1 },
  });
  await runner.start();
  assert.equal(await runner.whenCaughtUp(), true);
  const rows = await sink.query<Record<string, unknown>>(
    `SELECT n, big::text AS big, flag, note, at, encode(bytes, 'hex') AS bytes, doc, nothing, tags
     FROM kinds_v1 ORDER BY n`,
  );
  const [total] = await sink.query<{ n: number }>('SELECT n FROM total_v1 WHERE id = 1');
  const parked = await ledger.parked(sink, { name: 'kinds' });
  await runner.stop();
  await close();
  return { rows, total: total?.n, parked };
}

describe('deferred writes (PostgreSQL)', () => {
  it('writes the same read model as the plain path, values of every kind included', async () => {
    const plain = await runOver('plain', kinds({ deferWrites: false }), 1200);
    const deferredProjection = kinds({ deferWrites: true });
    const deferred = await runOver('deferred', deferredProjection, 1200);
    assert.equal(deferred.rows.length, 1200);
    assert.deepEqual(deferred.rows, plain.rows);
    assert.equal(deferred.total, 1200);
    // Every read saw every earlier write: 0, 1, 2, … in order.
    assert.deepEqual(
      deferredProjection.seenCounts,
      Array.from({ length: 1200 }, (_, i) => i),
    );
    assert.deepEqual(deferred.parked, []);
  });

  it('parks the event whose statement fails, and applies the others, nothing half-done', async () => {
    const projection = kinds({
      deferWrites: true,
      poison: (e) => e.streamVersion === 7,
    });
    // Two streams' worth in one stream: events after the poisoned one wait behind it (per-stream
    // order), so the failing one is the 7th and the table holds the six before it.
    const result = await runOver('poison', projection, 20, 10);
    assert.equal(result.parked.length, 14, 'the failing event and the 13 behind it');
    assert.equal(result.parked[0]!.event.streamVersion, 7);
    assert.match(result.parked[0]!.error, /null value|not-null/);
    assert.equal(result.rows.length, 6, 'nothing of event 7 or later is in the table');
    assert.equal(result.total, 6);
  });

  it('refuses to tell a row count it does not know', async () => {
    const { sink, close } = await setup('rowcount');
    try {
      let thrown: unknown;
      await sink.transaction(async (sql) => {
        await sql.execute('CREATE TABLE t_rows (id int)');
        assert.ok(canDefer(sql));
        const writes = new DeferredWrites(sql);
        const result = await writes.execute('INSERT INTO t_rows (id) VALUES ($1)', [1]);
        try {
          void result.rowCount;
        } catch (error) {
          thrown = error;
        }
        // Held until a read or a flush: a read sends it first.
        assert.equal((await writes.query('SELECT id FROM t_rows')).length, 1);
      });
      assert.ok(isTidemarkError(thrown, 'invalid_argument'), String(thrown));
    } finally {
      await close();
    }
  });
});

describe('statement templates and literals', () => {
  it('finds $n outside strings, identifiers, dollar quotes and comments; $10 is not $1', () => {
    assert.deepEqual(templateOf('SELECT $1, $10'), ['SELECT ', 1, ', ', 10, '']);
    assert.deepEqual(
      templateOf(`SELECT '$1', "$2", E'\\'$3', $$ $4 $$, $q$ $5 $q$, $6 -- $7\n/* $8 */ $9`),
      [`SELECT '$1', "$2", E'\\'$3', $$ $4 $$, $q$ $5 $q$, `, 6, ' -- $7\n/* $8 */ ', 9, ''],
    );
    assert.deepEqual(templateOf("SELECT 'it''s $1', $2"), ["SELECT 'it''s $1', ", 2, '']);
  });

  it('writes each kind of value as a quoted literal, and refuses what has no literal form', () => {
    assert.equal(literalOf(null), 'NULL');
    assert.equal(literalOf(undefined), 'NULL');
    assert.equal(literalOf(12.5), "'12.5'");
    assert.equal(literalOf(2n ** 70n), `'${String(2n ** 70n)}'`);
    assert.equal(literalOf(true), "'true'");
    assert.equal(literalOf("it's"), "'it''s'");
    assert.equal(literalOf('a\\b'), " E'a\\\\b'");
    assert.equal(literalOf(new Date('2026-12-05T01:02:03.004Z')), "'2026-12-05T01:02:03.004Z'");
    assert.equal(literalOf(Buffer.from([0, 255])), " E'\\\\x00ff'");
    assert.equal(literalOf({ a: "b'c" }), `'{"a":"b''c"}'`);
    assert.equal(literalOf(['a']), undefined);
    assert.equal(
      literalOf(() => 1),
      undefined,
    );
  });
});
