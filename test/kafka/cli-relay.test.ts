/**
 * `tidemark relay status` against a real relay and broker: what is published (read back from the
 * relay's progress record in Kafka) and the backlog behind the store's head.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { EventTopics, KafkaRelay } from 'tidemark/kafka';
import { SqliteEventStore } from 'tidemark/sqlite';
import { kafkaBrokers, kafkaConnection, uniqueName, uniqueTopic } from '../support/services.ts';

const root = new URL('../../', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'tidemark-cli-relay-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function relayStatus(env: Record<string, string>, name: string) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
    execFile(
      process.execPath,
      [join(root, 'bin/tidemark.js'), 'relay', 'status', '--name', name, '--json'],
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

it(
  'relay status shows what the relay published and the backlog',
  { timeout: 120_000 },
  async () => {
    const path = join(dir, 'store.db');
    const store = new SqliteEventStore(path);
    for (let i = 0; i < 30; i++)
      await store.appendToStream(`order-${i % 5}`, [{ type: 'Counted', data: { i } }]);
    const name = uniqueName('cli');
    const relay = new KafkaRelay({
      connection: kafkaConnection(),
      store,
      topics: new EventTopics({
        categories: { order: uniqueTopic('cli-relay') },
        settings: { partitions: 2 },
      }),
      source: 'tidemark://test',
      name,
      progressTopic: uniqueTopic('cli-progress'),
    });
    await relay.start();
    assert.equal(await relay.whenCaughtUp(60_000), true);
    const progressTopic = relay.progressTopic;
    const topic = Object.keys((await relay.status()).partitions)[0]!;
    await relay.stop();
    const storeId = await store.storeId();
    await store.appendToStream('order-9', [
      { type: 'Counted', data: {} },
      { type: 'Counted', data: {} },
    ]);
    await store.close();

    const config = join(dir, 'relay.config.mjs');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(
      config,
      `export default { relay: { progressTopic: ${JSON.stringify(progressTopic)} } };\n`,
    );
    const env = {
      DATABASE_URL: path,
      KAFKA_BROKERS: kafkaBrokers().join(','),
      TIDEMARK_CONFIG: config,
    };
    const run = await relayStatus(env, name);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout), {
      name,
      transactionalId: `tidemark-relay-${name}`,
      published: 30,
      head: 32,
      backlog: 2,
      pastHead: 0,
      storeId,
      progressStoreId: storeId,
      storeCheck: 'ok',
      partitions: { [topic]: 2 },
      parked: [],
    });
    const never = await relayStatus(env, uniqueName('never-ran'));
    assert.equal(JSON.parse(never.stdout).published, 0);
    const noKafka = await relayStatus({ DATABASE_URL: path, KAFKA_BROKERS: '' }, name);
    assert.equal(noKafka.code, 2);
  },
);
