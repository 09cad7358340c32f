/**
 * The relay's operator commands against a real relay and broker: `relay status` showing a
 * store that is not the relay's (exit 1, the check named, the position past the head not
 * hidden), `relay rebase` lifting it, and `relay parked|retry|skip` for an event too big.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { EventTopics, KafkaRelay } from 'tidemark/kafka';
import { SqliteEventStore } from 'tidemark/sqlite';
import { kafkaBrokers, kafkaConnection, uniqueName, uniqueTopic } from '../support/services.ts';

const root = new URL('../../', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'tidemark-cli-relay-ops-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function tidemark(env: Record<string, string>, args: string[]) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
    execFile(
      process.execPath,
      [join(root, 'bin/tidemark.js'), ...args],
      { cwd: root, env: { ...process.env, ...env } },
      (error, stdout, stderr) =>
        resolve({
          code: error ? Number((error as { code?: number }).code ?? 1) : 0,
          stdout,
          stderr,
        }),
    ),
  );
}

function relayOn(store: SqliteEventStore, name: string, topic: string, progressTopic: string) {
  return new KafkaRelay({
    connection: kafkaConnection(),
    store,
    topics: new EventTopics({ categories: { order: topic }, settings: { partitions: 2 } }),
    source: 'tidemark://test',
    name,
    progressTopic,
    maxEventBytes: 2000,
  });
}

it(
  "relay status names a store that is not the relay's, and relay rebase moves it onto this one",
  { timeout: 120_000 },
  async () => {
    const name = uniqueName('cli-ops');
    const topic = uniqueTopic('cli-ops');
    const progressTopic = uniqueTopic('cli-ops-progress');
    const first = new SqliteEventStore(join(dir, 'first.db'));
    for (let i = 0; i < 8; i++)
      await first.appendToStream(`order-${i % 2}`, [{ type: 'Counted', data: { i } }]);
    const relay = relayOn(first, name, topic, progressTopic);
    await relay.start();
    assert.equal(await relay.whenCaughtUp(60_000), true);
    await relay.stop();
    const firstId = await first.storeId();
    await first.close();

    // Another store, shorter: both checks fail; status says which store, and how far past.
    const path = join(dir, 'second.db');
    const second = new SqliteEventStore(path);
    for (let i = 0; i < 3; i++)
      await second.appendToStream('order-x', [{ type: 'Counted', data: { i } }]);
    const secondId = await second.storeId();
    await second.close();
    const config = join(dir, 'ops.config.mjs');
    writeFileSync(
      config,
      `export default { relay: { progressTopic: ${JSON.stringify(progressTopic)} } };\n`,
    );
    const env = {
      DATABASE_URL: path,
      KAFKA_BROKERS: kafkaBrokers().join(','),
      TIDEMARK_CONFIG: config,
    };
    const status = await tidemark(env, ['relay', 'status', '--name', name, '--json']);
    assert.equal(status.code, 1, 'the relay would refuse');
    const shown = JSON.parse(status.stdout);
    assert.equal(shown.storeCheck, 'other_store');
    assert.equal(shown.storeId, secondId);
    assert.equal(shown.progressStoreId, firstId);
    assert.equal(shown.published, 8);
    assert.equal(shown.head, 3);
    assert.equal(shown.pastHead, 5, 'a position past the head is not hidden');
    assert.equal(shown.backlog, 0);

    const usage = await tidemark(env, ['relay', 'rebase', '--name', name]);
    assert.equal(usage.code, 2);
    const rebase = await tidemark(env, ['relay', 'rebase', '--name', name, '--to', 'head']);
    assert.equal(rebase.code, 0, rebase.stderr);
    assert.match(rebase.stdout, /re-based: position 3, store /);
    const after = JSON.parse(
      (await tidemark(env, ['relay', 'status', '--name', name, '--json'])).stdout,
    );
    assert.equal(after.storeCheck, 'ok');
    assert.equal(after.progressStoreId, secondId);
    assert.equal(after.published, 3);
  },
);

it('relay parked, retry and skip: an event too big to publish', { timeout: 120_000 }, async () => {
  const name = uniqueName('cli-park');
  const topic = uniqueTopic('cli-park');
  const progressTopic = uniqueTopic('cli-park-progress');
  const path = join(dir, 'park.db');
  const store = new SqliteEventStore(path);
  const big = 'y'.repeat(3000);
  await store.appendToStream('order-a', [{ type: 'Counted', data: { big } }]);
  await store.appendToStream('order-b', [{ type: 'Counted', data: { big } }]);
  await store.appendToStream('order-a', [{ type: 'Counted', data: {} }]);
  await store.appendToStream('order-c', [{ type: 'Counted', data: {} }]);
  const relay = relayOn(store, name, topic, progressTopic);
  await relay.start();
  assert.equal(await relay.whenCaughtUp(60_000), true);
  await relay.stop();
  await store.close();

  const config = join(dir, 'park.config.mjs');
  writeFileSync(
    config,
    `export default { relay: { name: ${JSON.stringify(name)}, progressTopic: ${JSON.stringify(progressTopic)} } };\n`,
  );
  const env = {
    DATABASE_URL: path,
    KAFKA_BROKERS: kafkaBrokers().join(','),
    TIDEMARK_CONFIG: config,
  };
  const listed = await tidemark(env, ['relay', 'parked']);
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(listed.stdout, /STREAMID\s+STREAMVERSION\s+POSITION/);
  assert.match(listed.stdout, /order-a\s+1\s+1\s/);
  assert.match(listed.stdout, /order-b\s+1\s+2\s/);
  const text = await tidemark(env, ['relay', 'status']);
  assert.match(text.stdout, /parked \(too big to publish\)/);

  const still = await tidemark(env, [
    'relay',
    'retry',
    '--stream',
    'order-a',
    '--max-event-bytes',
    '2000',
  ]);
  assert.equal(still.code, 1);
  assert.match(still.stdout, /still parked at position 1: \d+ bytes, over the limit of 2000/);
  const retried = await tidemark(env, ['relay', 'retry', '--stream', 'order-a']);
  assert.equal(retried.code, 0, retried.stderr);
  assert.match(retried.stdout, /published 2; the stream is no longer parked/);
  const skipped = await tidemark(env, ['relay', 'skip', '--stream', 'order-b', '--json']);
  assert.deepEqual(JSON.parse(skipped.stdout), { published: 0 });
  const none = await tidemark(env, ['relay', 'skip', '--stream', 'order-b']);
  assert.equal(none.code, 2, 'nothing parked any more');
  const status = JSON.parse((await tidemark(env, ['relay', 'status', '--json'])).stdout);
  assert.deepEqual(status.parked, []);
});
