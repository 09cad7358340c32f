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
    drop: () => admin(url, (c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)),
  };
}
