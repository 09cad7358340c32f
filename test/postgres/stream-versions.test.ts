// The redelivery guard's read of stream versions (ledger.streamVersions) on PostgreSQL: right
// answers for any number of streams, and a plan that probes the key per stream even when the
// table was never analyzed (a new projection version catching up), instead of filtering every
// row of the version against the list.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ledgerMigrations, type SqlExecutor } from 'tidemark';
import { PostgresProjectionSink } from 'tidemark/postgres';
import { ledger, partitionKey } from '../../src/projections/ledger.ts';
import { schemaSource, type SchemaSource } from '../support/pg-schemas.ts';
import { createTestDatabase } from '../support/services.ts';

let source: SchemaSource;
before(async () => {
  source = schemaSource(await createTestDatabase('streams'));
});
after(() => source.drop());

/** A parameter as a literal, for EXECUTE of a statement prepared by hand. */
function literal(value: unknown): string {
  if (Array.isArray(value)) return `ARRAY[${value.map(literal).join(', ')}]::text[]`;
  if (typeof value === 'number') return String(value);
  return `'${String(value).replaceAll("'", "''")}'`;
}

/** Every plan node of an EXPLAIN (FORMAT JSON) answer. */
function nodes(plan: Record<string, unknown>): Record<string, unknown>[] {
  const children = (plan['Plans'] as Record<string, unknown>[] | undefined) ?? [];
  return [plan, ...children.flatMap(nodes)];
}

describe('postgres: stream versions of the redelivery guard', () => {
  let sink: PostgresProjectionSink;
  let schema: string;
  before(async () => {
    schema = source.schema('streams');
    sink = await PostgresProjectionSink.connect({ connectionString: source.db.url, schema });
    await sink.migrate('projections', ledgerMigrations);
    // 3,000 streams applied by version 1 of `p`, one of another version, one of another name.
    await sink.transaction(async (sql) => {
      const versions = new Map<string, number>();
      for (let i = 0; i < 3000; i++) versions.set(`s-${i}`, (i % 7) + 1);
      await ledger.saveStreamVersions(sql, 'p', 1, versions);
      await ledger.saveStreamVersions(sql, 'p', 2, new Map([['s-1', 99]]));
      await ledger.saveStreamVersions(sql, 'q', 1, new Map([['s-2', 98]]));
    });
  });
  after(async () => {
    await sink.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await sink.close();
  });

  it('answers for any number of streams in one call: applied ones only, of this version', async () => {
    // 450 asked (more than one statement's worth before), 150 of them never applied.
    const asked = Array.from({ length: 450 }, (_, i) => `s-${i * 9}`);
    const applied = await sink.transaction((sql) => ledger.streamVersions(sql, 'p', 1, asked));
    const expected = new Map<string, number>();
    for (let i = 0; i < 450; i++) if (i * 9 < 3000) expected.set(`s-${i * 9}`, ((i * 9) % 7) + 1);
    assert.equal(expected.size, 334);
    assert.deepEqual(applied, expected);
    assert.deepEqual(
      await ledger.streamVersions(sink, 'p', 2, ['s-1', 's-2']),
      new Map([['s-1', 99]]),
    );
    assert.deepEqual(await ledger.streamVersions(sink, 'p', 1, []), new Map());
    // Saved again: updated in place, and new streams added, in one call.
    await sink.transaction((sql) =>
      ledger.saveStreamVersions(
        sql,
        'p',
        1,
        new Map([
          ['s-0', 40],
          ['s-9000', 1],
        ]),
      ),
    );
    assert.deepEqual(
      await ledger.streamVersions(sink, 'p', 1, ['s-0', 's-9000', 's-1']),
      new Map([
        ['s-0', 40],
        ['s-9000', 1],
        ['s-1', 2],
      ]),
    );
    // A stream id that needs quoting in an array literal is one element all the same.
    await sink.transaction((sql) =>
      ledger.saveStreamVersions(sql, 'p', 1, new Map([['a,"b"} {c', 5]])),
    );
    assert.deepEqual(
      await ledger.streamVersions(sink, 'p', 1, ['a,"b"} {c', 'a']),
      new Map([['a,"b"} {c', 5]]),
    );
  });

  it("reads a version's state and its streams' versions in one statement", async () => {
    const asked = ['s-0', 's-5', 'never', 's-12', 's-0'];
    assert.deepEqual(await ledger.stateAndStreamVersions(sink, 'p', 1, asked), {
      state: undefined,
      applied: await ledger.streamVersions(sink, 'p', 1, asked),
    });
    await sink.query(
      `INSERT INTO tm_projections (name, version, state, position, tables, created_at, updated_at)
       VALUES ('p', 1, 'active', 0, '[]', 0, 0)`,
    );
    try {
      const both = await ledger.stateAndStreamVersions(sink, 'p', 1, asked);
      assert.equal(both.state, 'active');
      // s-0 was saved again by the test above; 'never' never applied.
      assert.deepEqual(both.applied, await ledger.streamVersions(sink, 'p', 1, asked));
      assert.deepEqual([...both.applied.keys()].sort(), ['s-0', 's-12', 's-5']);
      assert.deepEqual(await ledger.stateAndStreamVersions(sink, 'p', 1, []), {
        state: 'active',
        applied: new Map(),
      });
    } finally {
      await sink.query(`DELETE FROM tm_projections WHERE name = 'p'`);
    }
  });

  it("saves a batch's offsets and stream versions in one statement, or neither", async () => {
    const offsets = [
      { topic: 't', partition: 0, to: 10n },
      { topic: 't', partition: 1, to: 20n },
    ];
    await sink.transaction(async (sql) => {
      for (const o of offsets) {
        assert.equal(await ledger.moveOffset(sql, 'r', 1, o.topic, o.partition, null, o.to), true);
      }
    });
    const counted = (sql: SqlExecutor) => {
      let statements = 0;
      const executor = Object.create(sql) as SqlExecutor;
      executor.execute = (text, params) => (statements++, sql.execute(text, params));
      executor.query = (text, params) => (statements++, sql.query(text, params));
      return { executor, statements: () => statements };
    };
    const moves = [
      { topic: 't', partition: 0, expected: 10n, to: 15n },
      { topic: 't', partition: 1, expected: 20n, to: 26n },
    ];
    await sink.transaction(async (sql) => {
      const { executor, statements } = counted(sql);
      const saved = await ledger.moveOffsets(
        executor,
        'r',
        1,
        moves,
        new Map([
          ['x-1', 3],
          ['x-2', 1],
        ]),
      );
      assert.equal(saved, true);
      assert.equal(statements(), 1, 'one round trip');
    });
    assert.deepEqual(
      await ledger.streamVersions(sink, 'r', 1, ['x-1', 'x-2']),
      new Map([
        ['x-1', 3],
        ['x-2', 1],
      ]),
    );
    const stored = await ledger.offsets(sink, 'r', 1);
    assert.deepEqual(
      stored,
      new Map([
        [partitionKey('t', 0), 15n],
        [partitionKey('t', 1), 26n],
      ]),
    );
    // One offset moved meanwhile (expected 15 and 99): false, and the caller's rollback takes
    // the stream versions back with it.
    await assert.rejects(
      sink.transaction(async (sql) => {
        const saved = await ledger.moveOffsets(
          sql,
          'r',
          1,
          [
            { topic: 't', partition: 0, expected: 15n, to: 16n },
            { topic: 't', partition: 1, expected: 99n, to: 100n },
          ],
          new Map([['x-1', 4]]),
        );
        assert.equal(saved, false);
        throw new Error('rolled back');
      }),
      /rolled back/,
    );
    assert.deepEqual(await ledger.streamVersions(sink, 'r', 1, ['x-1']), new Map([['x-1', 3]]));
  });

  it('probes the key per stream under the generic plan of a table never analyzed', async () => {
    await sink.transaction(async (sql) => {
      // What a prepared statement runs once its plan is cached, without statistics.
      await sql.execute('SET LOCAL plan_cache_mode = force_generic_plan');
      const seen: { text: string; params: readonly unknown[] }[] = [];
      const recording = {
        dialect: sql.dialect,
        query: (text: string, params: readonly unknown[] = []) => {
          seen.push({ text, params });
          return sql.query(text, params);
        },
      } as Pick<SqlExecutor, 'query' | 'dialect'>;
      const asked = Array.from({ length: 50 }, (_, i) => `s-${i * 31}`);
      assert.equal((await ledger.streamVersions(recording, 'p', 1, asked)).size, 50);
      assert.equal(seen.length, 1);
      const [{ text, params }] = seen as [(typeof seen)[0]];
      await sql.execute(`PREPARE tm_stream_versions_probe AS ${text}`);
      try {
        const [row] = await sql.query<{ 'QUERY PLAN': Record<string, unknown>[] }>(
          `EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE tm_stream_versions_probe(${params.map(literal).join(', ')})`,
        );
        const plan = row!['QUERY PLAN'][0]!['Plan'] as Record<string, unknown>;
        const scans = nodes(plan).filter((n) => n['Relation Name'] === 'tm_projection_streams');
        assert.equal(scans.length, 1, JSON.stringify(plan));
        const scan = scans[0]!;
        assert.match(String(scan['Index Cond']), /stream_id/, JSON.stringify(scan));
        assert.equal(scan['Filter'], undefined, JSON.stringify(scan));
        // Rows read: one per stream asked, not the version's 3,000.
        const loops = Number(scan['Actual Loops']);
        const rows = Number(scan['Actual Rows']);
        assert.ok(rows * loops <= asked.length, `${rows} rows x ${loops} loops`);
      } finally {
        await sql.execute('DEALLOCATE tm_stream_versions_probe');
      }
    });
  });
});
