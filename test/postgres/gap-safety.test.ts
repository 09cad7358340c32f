/**
 * The global log under out-of-order commits. A position is taken when a row is inserted but
 * becomes visible when its transaction commits, so a reader of "position > checkpoint" can
 * move past a position whose transaction commits later, and never see it. These tests hold
 * transactions open on raw connections (through tm_append, inside BEGIN … COMMIT) to make
 * that happen, and check that readAll never skips, never repeats, never stalls for good.
 */
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { RecordedEvent } from 'tidemark';
import { PostgresEventStore } from 'tidemark/postgres';
import { schemaSource, type SchemaSource } from '../support/pg-schemas.ts';
import { createTestDatabase } from '../support/services.ts';

let source: SchemaSource;
before(async () => {
  source = schemaSource(await createTestDatabase('gaps'));
});
after(() => source.drop());

const ANY = -1;
const randomDelay = (maxMs: number) =>
  new Promise<void>((resolve) => setTimeout(resolve, Math.random() * maxMs));

/** The JSON tm_append takes: ids, types, schema versions, data, metadata. */
function eventsJson(ids: string[]): string {
  return JSON.stringify(ids.map((i) => ({ i, t: 'Tick', s: 1, d: { id: i }, m: {} })));
}

/** A raw connection that appends through tm_append in transactions it controls. */
async function rawAppender(schema: string) {
  const client = new pg.Client({ connectionString: source.db.url });
  await client.connect();
  return {
    /** BEGIN, then tm_append: the events hold their positions, uncommitted. */
    async begin(streamId: string, ids: string[]): Promise<number> {
      await client.query('BEGIN');
      const { rows } = await client.query<{ first_position: string }>(
        `SELECT first_position FROM "${schema}".tm_append($1, $2, $3, now())`,
        [streamId, ANY, eventsJson(ids)],
      );
      return Number(rows[0]!.first_position);
    },
    commit: () => client.query('COMMIT'),
    rollback: () => client.query('ROLLBACK'),
    query: (text: string, values?: unknown[]) => client.query(text, values),
    close: () => client.end(),
  };
}

async function openStore(schema: string, unsafe = false) {
  return PostgresEventStore.connect({
    connectionString: source.db.url,
    schema,
    poolSize: 4,
    ...(unsafe ? { unsafeDisableGapGuard: true } : {}),
  });
}

interface Outcome {
  /** Events whose COMMIT returned, by id. */
  committed: Map<string, number>;
  rolledBack: Set<string>;
  /** What the reader saw, in order. */
  seen: RecordedEvent[];
  held: { ids: string[]; position: number; readerCheckpointAtCommit: number };
}

/**
 * Many appenders commit or roll back after random delays, while one transaction stays open for
 * seconds; a reader polls readAll all along, waking on each transaction's end.
 */
async function provoke(schema: string, reader: PostgresEventStore): Promise<Outcome> {
  const ended = new EventEmitter();
  ended.setMaxListeners(100);
  const committed = new Map<string, number>();
  const rolledBack = new Set<string>();
  const seen: RecordedEvent[] = [];
  let checkpoint = 0;
  let allDone = false;
  let caughtUpRounds = 0;
  let holderDone = false;
  let nextId = 0;
  const id = () => `e-${++nextId}`;

  // The reader: reads in small batches; when it is caught up (by its own measure), it waits for
  // the next transaction to end rather than spinning.
  const reading = (async () => {
    for (;;) {
      const batch = await reader.readAll({ after: checkpoint, maxCount: 37 });
      for (const event of batch) {
        assert.ok(event.position > checkpoint, 'positions strictly increase');
        checkpoint = event.position;
        seen.push(event);
      }
      if (batch.length < 37) {
        caughtUpRounds++;
        ended.emit('caught-up');
        if (allDone) {
          if (batch.length === 0) return;
          continue;
        }
        await once(ended, 'ended');
      }
    }
  })();

  const appender = async (n: number) => {
    const raw = await rawAppender(schema);
    let extra = 0;
    try {
      for (let k = 0; !holderDone || extra++ < 10; k++) {
        const ids = Array.from({ length: 1 + (k % 3) }, id);
        const position = await raw.begin(`s-${n}-${k % 4}`, ids);
        await randomDelay(15);
        if (Math.random() < 0.15) {
          await raw.rollback();
          for (const i of ids) rolledBack.add(i);
        } else {
          await raw.commit();
          ids.forEach((i, j) => committed.set(i, position + j));
        }
        ended.emit('ended');
      }
    } finally {
      await raw.close();
    }
  };

  const holder = (async () => {
    const raw = await rawAppender(schema);
    const ids = [id(), id()];
    const position = await raw.begin('held', ids);
    const startedAt = Date.now();
    // Hold until plenty of later transactions have committed and the reader has caught up (as
    // far as it may) after them, and at least two seconds have passed.
    const committedAtStart = committed.size;
    while (committed.size < committedAtStart + 60) await once(ended, 'ended');
    const rounds = caughtUpRounds;
    while (caughtUpRounds < rounds + 2) await once(ended, 'caught-up');
    const remaining = 2000 - (Date.now() - startedAt);
    if (remaining > 0) await new Promise((resolve) => setTimeout(resolve, remaining));
    const readerCheckpointAtCommit = checkpoint;
    await raw.commit();
    ids.forEach((i, j) => committed.set(i, position + j));
    holderDone = true;
    ended.emit('ended');
    await raw.close();
    return { ids, position, readerCheckpointAtCommit };
  })();

  const appenders = Promise.all(Array.from({ length: 6 }, (_, n) => appender(n)));
  const held = await holder;
  await appenders;
  allDone = true;
  ended.emit('ended');
  await reading;
  return { committed, rolledBack, seen, held };
}

describe('readAll under out-of-order commits (PostgreSQL)', () => {
  it(
    'sees every committed event exactly once, in position order, past rollbacks and a transaction held open for seconds',
    { timeout: 120_000 },
    async () => {
      const schema = source.schema('gaps');
      const store = await openStore(schema);
      try {
        const { committed, rolledBack, seen, held } = await provoke(schema, store);
        // While the held transaction was open, the reader never moved past its position.
        assert.ok(
          held.readerCheckpointAtCommit < held.position,
          `reader was at ${held.readerCheckpointAtCommit}, held position ${held.position}`,
        );
        const seenIds = seen.map((e) => e.eventId);
        assert.equal(new Set(seenIds).size, seenIds.length, 'no event twice');
        for (const i of seenIds) assert.ok(!rolledBack.has(i), `rolled back ${i} was read`);
        const expected = [...committed].sort((a, b) => a[1] - b[1]).map(([i]) => i);
        assert.deepEqual(seenIds, expected);
        assert.ok(rolledBack.size > 0, 'some transactions rolled back');
        assert.ok(committed.size > 200, `only ${committed.size} events committed`);
        assert.equal(await store.headPosition(), seen[seen.length - 1]!.position);
      } finally {
        await store.close();
      }
    },
  );

  it(
    'without the guard, a naive position reader does skip the late commit (what the guard is for)',
    { timeout: 120_000 },
    async () => {
      const schema = source.schema('naive');
      const setup = await openStore(schema);
      const naive = await openStore(schema, true);
      try {
        const { committed, seen, held } = await provoke(schema, naive);
        assert.ok(held.readerCheckpointAtCommit > held.position, 'the naive reader moved past it');
        const seenIds = new Set(seen.map((e) => e.eventId));
        const missed = [...committed.keys()].filter((i) => !seenIds.has(i));
        assert.ok(missed.length > 0, 'the naive reader skipped events');
        for (const i of held.ids) assert.ok(missed.includes(i), `held event ${i} was skipped`);
      } finally {
        await naive.close();
        await setup.close();
      }
    },
  );

  it('stops before an open transaction, then goes on when it rolls back; the head follows', async () => {
    const schema = source.schema('open');
    const store = await openStore(schema);
    const naive = await openStore(schema, true);
    const raw = await rawAppender(schema);
    try {
      const first = await store.appendToStream('a', [{ type: 'E', data: {} }]);
      const open = await raw.begin('b', ['open-1']);
      const later = await store.appendToStream('c', [{ type: 'E', data: {} }]);
      assert.ok(first.position < open && open < later.position);
      // The settled run ends before the open transaction's position.
      assert.deepEqual(
        (await store.readAll()).map((e) => e.position),
        [first.position],
      );
      assert.equal(await store.headPosition(), first.position);
      // A naive reader already sees the later event: it would move past the open one.
      assert.deepEqual(
        (await naive.readAll()).map((e) => e.position),
        [first.position, later.position],
      );
      await raw.rollback();
      assert.deepEqual(
        (await store.readAll({ after: first.position })).map((e) => e.position),
        [later.position],
      );
      assert.equal(await store.headPosition(), later.position);
    } finally {
      await raw.close();
      await naive.close();
      await store.close();
    }
  });

  it('is not held back by a long transaction that does not append', async () => {
    const schema = source.schema('other');
    const store = await openStore(schema);
    const raw = await rawAppender(schema);
    try {
      // A transaction with an id, open for as long as the test runs: a batch job, or a session
      // left idle in a transaction.
      await raw.query('BEGIN');
      await raw.query(`CREATE TABLE "${schema}".unrelated (id integer)`);
      await raw.query(`INSERT INTO "${schema}".unrelated VALUES (1)`);
      const appended = await store.appendToStream('s', [{ type: 'E', data: {} }]);
      assert.deepEqual(
        (await store.readAll()).map((e) => e.position),
        [appended.position],
      );
      assert.equal(await store.headPosition(), appended.position);
      await raw.query('ROLLBACK');
    } finally {
      await raw.close();
      await store.close();
    }
  });

  it('refuses an append in a transaction that already wrote (its id would break the order)', async () => {
    const schema = source.schema('order');
    const store = await openStore(schema);
    const raw = await rawAppender(schema);
    try {
      await raw.query('BEGIN');
      await raw.query('SELECT pg_current_xact_id()');
      await assert.rejects(
        raw.query(`SELECT * FROM "${schema}".tm_append($1, $2, $3, now())`, [
          's',
          ANY,
          eventsJson(['x']),
        ]),
        (error: { code?: string }) => error.code === 'TM001',
      );
      await raw.query('ROLLBACK');
      assert.equal(await store.headPosition(), 0);
    } finally {
      await raw.close();
      await store.close();
    }
  });

  it('reads an append that committed before the call at once, while write transactions of another database come and go', async () => {
    // The horizon counts a transaction that ended between the read's snapshot and its probe
    // (it may have been an append). Transactions of other databases on the same server are in
    // every snapshot too, so under their churn a read could stop short of an append that
    // committed before it: sound, but a surprise to a caller reading its own write. The store
    // asks again with a new snapshot in that case.
    const neighbour = await createTestDatabase('gaps-neighbour');
    const schema = source.schema('churn');
    const store = await openStore(schema);
    const clients = await Promise.all(
      [0, 1, 2].map(async () => {
        const client = new pg.Client({ connectionString: neighbour.url });
        await client.connect();
        return client;
      }),
    );
    let churning = true;
    let neighbourTransactions = 0;
    const churn = clients.map(async (client) => {
      while (churning) {
        await client.query('BEGIN');
        await client.query('SELECT pg_current_xact_id()'); // a write transaction: it has an id
        await client.query('COMMIT');
        neighbourTransactions++;
      }
    });
    const short: string[] = [];
    try {
      let after = 0;
      for (let i = 0; i < 300; i++) {
        const { position } = await store.appendToStream(`s-${i % 7}`, [
          { type: 'Tick', data: { i } },
        ]);
        const head = await store.headPosition();
        const read = await store.readAll({ after, maxCount: 10 });
        if (head !== position) short.push(`head ${head} after an append at ${position}`);
        if (read.at(-1)?.position !== position)
          short.push(`readAll ended at ${read.at(-1)?.position} after an append at ${position}`);
        after = position;
      }
    } finally {
      churning = false;
      await Promise.all(churn);
      await Promise.all(clients.map((c) => c.end()));
      await store.close();
      await neighbour.drop();
    }
    assert.ok(neighbourTransactions > 300, `only ${neighbourTransactions} neighbour transactions`);
    assert.deepEqual(short, []);
  });
});
