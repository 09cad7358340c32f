// The accounts example (public API only) runs embedded and in Kafka mode, on real SQLite and Kafka.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { KafkaAdmin } from 'tidemark/kafka';
import { createAccountsService } from '../../examples/accounts/src/accounts.ts';
import { kafkaConnection, uniqueName, uniqueTopic } from '../support/services.ts';

const dir = mkdtempSync(join(tmpdir(), 'tidemark-accounts-'));
const topic = uniqueTopic('accounts');
after(async () => {
  rmSync(dir, { recursive: true, force: true });
  const admin = new KafkaAdmin(kafkaConnection());
  await admin.deleteTopic(topic, { ifExists: true });
  await admin.close();
});

for (const mode of ['embedded', 'kafka'] as const) {
  it(`opens, deposits and reads a balance (${mode})`, { timeout: 60_000 }, async () => {
    const service = await createAccountsService({
      storage: join(dir, `${mode}.db`),
      // Names of their own: a relay refuses the progress another test's store left under its name.
      kafka:
        mode === 'kafka'
          ? {
              connection: kafkaConnection(),
              topics: { account: topic },
              relayName: uniqueName('accounts'),
              groupPrefix: uniqueName('accounts'),
            }
          : undefined,
    });
    await service.start();
    try {
      const call = (method: 'GET' | 'PUT' | 'POST', url: string, payload?: object) =>
        service.app.inject({ method, url, ...(payload ? { payload } : {}) });
      assert.equal((await call('PUT', '/accounts/a-1', { owner: 'Ada' })).statusCode, 201);
      assert.equal(
        (await call('PUT', '/accounts/a-1', { owner: 'Ada' })).json().code,
        'already_open',
      );
      assert.equal(
        (await call('POST', '/accounts/a-2/deposits', { amountCents: 5 })).statusCode,
        404,
      );
      const deposit = await call('POST', '/accounts/a-1/deposits', { amountCents: 250 });
      assert.equal(deposit.statusCode, 200);
      const read = await service.app.inject({
        url: '/accounts/a-1',
        headers: { 'consistency-token': String(deposit.headers['consistency-token']) },
      });
      assert.equal(read.headers.consistency, 'fresh');
      assert.deepEqual(read.json(), { id: 'a-1', owner: 'Ada', balanceCents: 250 });
      assert.equal((await call('GET', '/ready')).statusCode, 200);
      const metrics = (await call('GET', '/metrics')).body;
      assert.match(
        metrics,
        /tidemark_projection_lag_events\{projection="balances",version="1"\} \d/,
      );
      assert.equal(
        /tidemark_relay_backlog_events\{relay="accounts_/.test(metrics),
        mode === 'kafka',
      );
    } finally {
      await service.stop();
    }
  });
}
