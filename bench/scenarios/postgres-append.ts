/**
 * Appends on PostgreSQL: Tidemark's store (one `tm_append` call per append) against raw `pg`
 * doing the same work on the same tables:
 *
 * - `raw pg transaction`: per append, BEGIN; read the stream's version FOR UPDATE; insert the
 *   events; upsert the stream row; COMMIT. What a hand-written store with an expected-version
 *   check does, in five round trips.
 * - `raw pg insert`: the events inserted by one plain INSERT, no check, no stream row: the
 *   floor for one durable write per append.
 *
 * The three run in this process, each on a pool of its own, taking turns slice by slice (A B C,
 * B C A, …) so their ratios are taken pair by pair; peak RSS is the process's, shared.
 *
 * Needs a database: TIDEMARK_BENCH_DATABASE_URL or DATABASE_URL (`npm run services:up` prints
 * one). Each implementation writes into a schema of its own, dropped afterwards.
 */
import pg from 'pg';
import { PostgresEventStore } from 'tidemark/postgres';
import { interleave, type Result, type SlicedCase, type Workload } from '../lib.ts';
import type { BenchContext } from '../run.ts';

const payload = { sku: 'SKU-000123', quantity: 3, unitPriceCents: 1299, note: 'x'.repeat(80) };
const payloadJson = JSON.stringify(payload);

function databaseUrl(): string | undefined {
  const url = process.env.TIDEMARK_BENCH_DATABASE_URL ?? process.env.DATABASE_URL;
  return url && /^postgres(ql)?:\/\//.test(url) ? url : undefined;
}

/** Creates the store's tables in `schema` (through the store itself) and returns a pool on it. */
async function prepareSchema(url: string, schema: string, poolSize: number) {
  await (await PostgresEventStore.connect({ connectionString: url, schema })).close();
  return new pg.Pool({ connectionString: url, max: poolSize });
}

const columns =
  'position, tx_id, stream_id, stream_version, event_id, type, schema_version, data, metadata, recorded_at';

/** `count` rows of VALUES: $1 stream, $2 the version before, then an id per row. */
function insertSql(schema: string, count: number): string {
  const rows = Array.from(
    { length: count },
    (_, i) =>
      `(nextval('"${schema}".tm_events_position_seq'), pg_current_xact_id(), $1, $2::bigint + ${i + 1}, $${i + 3}, 'ItemAdded', 1, $${count + 3}::jsonb, '{}'::jsonb, now())`,
  );
  return `INSERT INTO "${schema}".tm_events (${columns}) VALUES ${rows.join(', ')} RETURNING position`;
}

function rawTransaction(pool: pg.Pool, schema: string) {
  const q = `"${schema}"`;
  return async (streamId: string, count: number, expected: number): Promise<number> => {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      const { rows } = await client.query<{ version: string }>({
        name: `raw.version.${schema}`,
        text: `SELECT version FROM ${q}.tm_streams WHERE stream_id = $1 FOR UPDATE`,
        values: [streamId],
      });
      const current = rows.length === 0 ? 0 : Number(rows[0]!.version);
      if (current !== expected) throw new Error(`conflict on ${streamId}`);
      const ids = Array.from({ length: count }, () => crypto.randomUUID());
      const inserted = await client.query<{ position: string }>({
        name: `raw.insert.${schema}.${count}`,
        text: insertSql(schema, count),
        values: [streamId, current, ...ids, payloadJson],
      });
      const position = Number(inserted.rows[inserted.rows.length - 1]!.position);
      await client.query({
        name: `raw.stream.${schema}`,
        text: `INSERT INTO ${q}.tm_streams (stream_id, version, position, updated_at)
               VALUES ($1, $2, $3, now())
               ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version,
                 position = excluded.position, updated_at = excluded.updated_at`,
        values: [streamId, current + count, position],
      });
      await client.query('COMMIT');
      return current + count;
    } catch (error) {
      await client.query('ROLLBACK');
      throw error;
    } finally {
      client.release();
    }
  };
}

function rawInsert(pool: pg.Pool, schema: string) {
  return async (streamId: string, count: number, before: number): Promise<void> => {
    const ids = Array.from({ length: count }, () => crypto.randomUUID());
    await pool.query({
      name: `raw.insert.${schema}.${count}`,
      text: insertSql(schema, count),
      values: [streamId, before, ...ids, payloadJson],
    });
  };
}

export async function postgresAppend(ctx: BenchContext): Promise<Result[]> {
  const url = databaseUrl();
  if (!url) {
    process.stderr.write(
      'postgres-append: skipped, no database: set TIDEMARK_BENCH_DATABASE_URL (or DATABASE_URL) ' +
        'to a postgres:// URL (`npm run services:up` prints one)\n',
    );
    return [];
  }
  const ops = ctx.quick ? 3000 : 5000;
  const slices = ctx.quick ? 12 : 10;
  const results: Result[] = [];
  const schemas: string[] = [];
  const schema = (label: string) => {
    const name = `tm_bench_${process.pid}_${label}`;
    schemas.push(name);
    return name;
  };
  const events = (n: number) =>
    Array.from({ length: n }, () => ({ type: 'ItemAdded', data: payload }));
  // The three implementations in this process, taking turns slice by slice (lib.ts
  // `interleave`), so that the ratios are taken pair by pair.
  const local = (impl: string, workload: () => Promise<Workload>): SlicedCase => ({
    impl,
    module: '',
    fn: '',
    args: null,
    local: workload,
  });

  try {
    for (const perCall of [1, 10]) {
      const scenario = `postgres append ${perCall} event${perCall > 1 ? 's' : ''} per call`;
      const unit = `events/s, ${perCall} per append`;
      const stream = (i: number) => `order-${i % 1000}`;
      const cases = [
        local('raw pg insert', async () => {
          const plain = schema(`insert_${perCall}`);
          const pool = await prepareSchema(url, plain, 2);
          const insert = rawInsert(pool, plain);
          const versions = new Map<string, number>();
          return {
            op: async (i: number) => {
              const before = versions.get(stream(i)) ?? 0;
              versions.set(stream(i), before + perCall);
              await insert(stream(i), perCall, before);
            },
            close: () => pool.end(),
            notes: 'no version check',
          };
        }),
        local('raw pg transaction', async () => {
          const checked = schema(`tx_${perCall}`);
          const pool = await prepareSchema(url, checked, 2);
          const transaction = rawTransaction(pool, checked);
          const versions = new Map<string, number>();
          return {
            op: async (i: number) => {
              versions.set(
                stream(i),
                await transaction(stream(i), perCall, versions.get(stream(i)) ?? 0),
              );
            },
            close: () => pool.end(),
          };
        }),
        local('tidemark', async () => {
          const store = await PostgresEventStore.connect({
            connectionString: url,
            schema: schema(`tidemark_${perCall}`),
            poolSize: 2,
          });
          const versions = new Map<string, number>();
          const batch = events(perCall);
          return {
            op: async (i: number) => {
              const result = await store.appendToStream(stream(i), batch, {
                expectedVersion: versions.get(stream(i)) ?? 0,
              });
              versions.set(stream(i), result.nextExpectedVersion);
            },
            close: () => store.close(),
          };
        }),
      ];
      results.push(
        ...(await interleave(scenario, cases, {
          unit: `${unit} with an expected version (raw pg insert: none)`,
          ops,
          slices,
          itemsPerOp: perCall,
        })),
      );
    }

    {
      const scenario = 'postgres append, 32 concurrent writers';
      const unit = 'events/s, 1 per append, 32 in flight on distinct streams, 32 connections';
      const stream = (i: number) => `order-${i % 4096}`;
      const cases = [
        local('raw pg insert', async () => {
          const plain = schema('insert_c');
          const pool = await prepareSchema(url, plain, 32);
          const insert = rawInsert(pool, plain);
          const versions = new Map<string, number>();
          return {
            op: async (i: number) => {
              const before = versions.get(stream(i)) ?? 0;
              versions.set(stream(i), before + 1);
              await insert(stream(i), 1, before);
            },
            close: () => pool.end(),
            notes: 'no version check',
          };
        }),
        local('raw pg transaction', async () => {
          const checked = schema('tx_c');
          const pool = await prepareSchema(url, checked, 32);
          const transaction = rawTransaction(pool, checked);
          const versions = new Map<string, number>();
          return {
            op: async (i: number) => {
              const expected = versions.get(stream(i)) ?? 0;
              versions.set(stream(i), expected + 1);
              await transaction(stream(i), 1, expected);
            },
            close: () => pool.end(),
          };
        }),
        local('tidemark', async () => {
          const store = await PostgresEventStore.connect({
            connectionString: url,
            schema: schema('tidemark_c'),
            poolSize: 32,
          });
          const versions = new Map<string, number>();
          const batch = events(1);
          return {
            op: async (i: number) => {
              const expected = versions.get(stream(i)) ?? 0;
              versions.set(stream(i), expected + 1);
              await store.appendToStream(stream(i), batch, { expectedVersion: expected });
            },
            close: () => store.close(),
          };
        }),
      ];
      results.push(
        ...(await interleave(scenario, cases, { unit, ops: ops * 2, slices, concurrency: 32 })),
      );
    }
  } finally {
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    for (const name of schemas) await admin.query(`DROP SCHEMA IF EXISTS "${name}" CASCADE`);
    await admin.end();
  }
  return results;
}
