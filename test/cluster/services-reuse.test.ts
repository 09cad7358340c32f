/**
 * `services:up` beside servers another checkout of the project started (a second worktree, a CI
 * clone beside a developer's tree): it reuses the healthy ones instead of refusing the taken
 * ports, does not count them as its own (`running`), and its `down` leaves them running. The
 * other checkout is played by a fresh services directory (TIDEMARK_SERVICES_DIR): it has no
 * record of the servers this test run uses.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { KafkaAdmin } from 'tidemark/kafka';
import {
  kafkaBrokers,
  kafkaClusterBrokers,
  kafkaClusterConnection,
  kafkaConnection,
} from '../support/services.ts';

const root = new URL('../../', import.meta.url).pathname;
const otherCheckout = mkdtempSync(join(tmpdir(), 'tidemark-other-checkout-'));
after(() => rmSync(otherCheckout, { recursive: true, force: true }));

/** services.mjs as the other checkout runs it: its own state directory, nothing preset. */
function services(args: string[], env: Record<string, string>) {
  const clean = { ...process.env };
  for (const name of ['DATABASE_URL', 'KAFKA_BROKERS', 'KAFKA_CLUSTER_BROKERS']) delete clean[name];
  return spawnSync(process.execPath, ['scripts/services.mjs', ...args], {
    cwd: root,
    env: { ...clean, TIDEMARK_SERVICES_DIR: otherCheckout, ...env },
    encoding: 'utf8',
  });
}

async function brokerCount(admin: KafkaAdmin): Promise<number> {
  try {
    return (await admin.describeCluster()).brokers.length;
  } finally {
    await admin.close();
  }
}

const portOf = (broker: string) => broker.split(':').pop()!;

describe('services:up beside another checkout', () => {
  it(
    'reuses a three-broker cluster it did not start, and its down leaves it running',
    {
      skip: kafkaClusterBrokers() ? false : 'no three-broker cluster in this run',
    },
    async () => {
      const brokers = kafkaClusterBrokers()!;
      const env = { TIDEMARK_KAFKA_CLUSTER_PORT: portOf(brokers[0]!) };
      const up = services(['up', 'kafka-cluster'], env);
      assert.equal(up.status, 0, up.stderr);
      assert.equal(up.stdout.trim(), `KAFKA_CLUSTER_BROKERS=${brokers.join(',')}`);
      assert.match(up.stderr, /reusing a cluster this checkout did not start/);
      const running = services(['running', 'kafka-cluster'], env);
      assert.equal(running.status, 0, running.stderr);
      assert.equal(running.stdout, '', 'not counted as started by the other checkout');
      const down = services(['down', 'kafka-cluster'], env);
      assert.equal(down.status, 0, down.stderr);
      assert.equal(await brokerCount(new KafkaAdmin(kafkaClusterConnection())), 3);
    },
  );

  it('reuses a single broker it did not start, and its down leaves it running', async () => {
    const brokers = kafkaBrokers();
    const env = { TIDEMARK_KAFKA_PORT: portOf(brokers[0]!) };
    const up = services(['up', 'kafka'], env);
    assert.equal(up.status, 0, up.stderr);
    assert.equal(up.stdout.trim(), `KAFKA_BROKERS=${brokers.join(',')}`);
    assert.match(up.stderr, /reusing a broker this checkout did not start/);
    assert.equal(services(['running', 'kafka'], env).stdout, '');
    assert.equal(services(['down', 'kafka'], env).status, 0);
    assert.ok((await brokerCount(new KafkaAdmin(kafkaConnection()))) >= 1);
  });
});
