/**
 * Scratch space on the bench's PostgreSQL: a schema or a whole database per use, dropped
 * afterwards, so runs never see each other's tables (nor the tests').
 */
import pg from 'pg';

let counter = 0;
const label = (what: string) => `tm_bench_${process.pid}_${counter++}_${what}`.slice(0, 48);

async function admin<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** A new schema name (the store or sink creates it). */
export async function freshSchema(url: string, what: string) {
  const name = label(what);
  return {
    name,
    drop: () => admin(url, (c) => c.query(`DROP SCHEMA IF EXISTS "${name}" CASCADE`)),
  };
}

/** A new, empty database (for Emmett, whose tables live in `public`). */
export async function freshDatabase(url: string, what: string) {
  const name = label(what);
  await admin(url, (c) => c.query(`CREATE DATABASE "${name}"`));
  const own = new URL(url);
  own.pathname = `/${name}`;
  return {
    name,
    url: own.toString(),
    drop: () =>
      admin(url, async (c) => {
        try {
          await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
        } catch (error) {
          // FORCE refuses (42501) while a backend of another role is in the database: an
          // autovacuum worker after a heavy write phase. A plain DROP stops autovacuum itself;
          // sessions of our own role that are still there are ended first.
          if ((error as { code?: string }).code !== '42501') throw error;
          await c.query(
            `SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity
             WHERE datname = $1 AND pid <> pg_backend_pid() AND usename = current_user`,
            [name],
          );
          await c.query(`DROP DATABASE IF EXISTS "${name}"`);
        }
      }),
  };
}
