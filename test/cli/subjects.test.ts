/**
 * `tidemark subjects forget` as users run it (bin/tidemark.js in a child process, this
 * repository's tidemark.config.ts): exit codes, output, and the effect on the store's reads and
 * on the file's bytes.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startTestService, type TestService } from '../support/orders.ts';

const root = new URL('../../', import.meta.url).pathname;
const bin = join(root, 'bin/tidemark.js');
const ADDRESS = `CLI Road ${Math.random().toString(36).slice(2)}`;

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { cwd: root }, (error, stdout, stderr) => {
      const code = error ? ((error as { code?: number }).code ?? 1) : 0;
      resolve({ code: typeof code === 'number' ? code : 1, stdout, stderr });
    });
  });
}

describe('tidemark subjects forget', () => {
  let service: TestService;
  let path: string;
  before(async () => {
    service = await startTestService();
    path = service.databaseUrl;
    const created = await service.app.inject({
      method: 'POST',
      url: '/orders',
      payload: {
        orderId: 'cli-1',
        customerId: 'cli-cust',
        lines: [{ sku: 'A', quantity: 1, unitPriceCents: 1 }],
        shippingAddress: ADDRESS,
      },
    });
    assert.equal(created.statusCode, 201);
    await service.stop();
  });
  after(() => service.dispose());

  it('forgets a customer: exit 0, reads redacted, the file without the address; again: exit 0; unknown: exit 3', async () => {
    const db = ['--database', path];
    const shown = await cli(['streams', 'show', 'order-cli-1', '--json', ...db]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.equal(JSON.parse(shown.stdout)[0].data.shippingAddress, ADDRESS);

    const forgot = await cli(['subjects', 'forget', 'cli-cust', '--json', ...db]);
    assert.equal(forgot.code, 0, forgot.stderr);
    const result = JSON.parse(forgot.stdout);
    assert.deepEqual(result.streamIds, ['order-cli-1']);
    assert.equal(result.redacted.length, 3, 'the three Orders read models');

    const after = await cli(['streams', 'show', 'order-cli-1', '--json', ...db]);
    assert.deepEqual(JSON.parse(after.stdout)[0].data.shippingAddress, {
      $personal: 'redacted',
      subject: 'cli-cust',
    });
    const bytes = Buffer.concat([
      readFileSync(path),
      existsSync(`${path}-wal`) ? readFileSync(`${path}-wal`) : Buffer.alloc(0),
    ]);
    assert.equal(bytes.includes(ADDRESS), false);

    const again = await cli(['subjects', 'forget', 'cli-cust', ...db]);
    assert.equal(again.code, 0);
    assert.match(again.stdout, /already forgotten.*\(subject_forgotten\)/);
    const unknown = await cli(['subjects', 'forget', 'nobody', ...db]);
    assert.equal(unknown.code, 3);
    assert.match(unknown.stderr, /unknown_subject/);
    const missing = await cli(['subjects', 'forget', ...db]);
    assert.equal(missing.code, 2);
  });
});
