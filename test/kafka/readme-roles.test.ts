/**
 * The README's "each role in its own process" example, run as written on one machine (only the
 * port numbers are moved to free ones, keeping them distinct as the README has them), on real
 * PostgreSQL and Kafka: every role starts, and an order made through the api process is read
 * back fresh, applied by the projector process from what the relay process published. And what
 * happens when two processes are given the same port: a one-line error, no stack trace.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { after, it } from 'node:test';
import { KafkaAdmin } from 'tidemark/kafka';
import { startServiceProcess, type ServiceProcess } from '../support/process.ts';
import {
  createTestDatabase,
  kafkaBrokers,
  kafkaConnection,
  uniqueName,
  uniqueTopic,
} from '../support/services.ts';

const topics: string[] = [];
after(async () => {
  const admin = new KafkaAdmin(kafkaConnection());
  for (const topic of topics) await admin.deleteTopic(topic, { ifExists: true });
  await admin.close();
});

/** The README's per-role commands: `PORT=<n> npm start -- <args>`. */
function readmeRoleCommands(): { port: number; args: string[] }[] {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const section = readme.split('## Running with PostgreSQL and Kafka')[1]!;
  const block = section.split('```bash\n')[1]!.split('```')[0]!;
  return block
    .split('\n')
    .map((line) => /^PORT=(\d+) npm start -- (.+?)\s*(?:#.*)?$/.exec(line.trim()))
    .filter((match) => match !== null)
    .map((match) => ({ port: Number(match[1]), args: match[2]!.split(/\s+/) }));
}

/** Ports nobody listens on now, one per README port. */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve) => {
          const server = createServer();
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

it(
  'README: each role in its own process on one machine, each on a port of its own as the README has it',
  { timeout: 180_000 },
  async () => {
    const commands = readmeRoleCommands();
    assert.deepEqual(commands.map((c) => c.args.join(' ')).sort(), [
      '--role api',
      '--role projector',
      '--role relay',
    ]);
    assert.equal(new Set(commands.map((c) => c.port)).size, 3, 'a port of its own per role');
    const ports = await freePorts(commands.length);
    const db = await createTestDatabase('readme_roles');
    const topic = uniqueTopic('readme-roles');
    topics.push(topic);
    // What `eval "$(npm run -s services:up)"` exports, plus names of this test's own.
    const env = {
      DATABASE_URL: db.url,
      KAFKA_BROKERS: kafkaBrokers().join(','),
      KAFKA_TOPIC: topic,
      KAFKA_PARTITIONS: '2',
      KAFKA_RELAY_NAME: uniqueName('readme'),
      KAFKA_GROUP_PREFIX: uniqueName('readme'),
    };
    const processes: ServiceProcess[] = [];
    try {
      for (const [i, command] of commands.entries()) {
        processes.push(await startServiceProcess({ ...env, PORT: String(ports[i]) }, command.args));
      }
      for (const [i, p] of processes.entries()) {
        assert.equal(new URL(p.url).port, String(ports[i]));
        assert.equal((await fetch(`${p.url}/health`)).status, 200);
      }
      const api = processes[commands.findIndex((c) => c.args.includes('api'))]!.url;
      const created = await fetch(`${api}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          orderId: 'readme-1',
          customerId: 'c-7',
          lines: [{ sku: 'BOOK-1', quantity: 2, unitPriceCents: 1250 }],
        }),
      });
      assert.equal(created.status, 201);
      const read = await fetch(`${api}/orders/readme-1`, {
        headers: { 'consistency-token': created.headers.get('consistency-token')! },
      });
      assert.equal(read.status, 200);
      assert.equal(read.headers.get('consistency'), 'fresh');
      assert.equal(((await read.json()) as { totalCents: number }).totalCents, 2500);
    } finally {
      for (const p of processes) p.child.kill('SIGTERM');
      for (const p of processes) assert.equal(await p.exited, 0);
      await db.drop();
    }
  },
);

it('a second process on a port already in use: a one-line error and exit 1, no stack trace', async () => {
  const db = await createTestDatabase('readme_port');
  const first = await startServiceProcess({ DATABASE_URL: db.url }, ['--role', 'api']);
  try {
    const port = new URL(first.url).port;
    const second = await startServiceProcess({ DATABASE_URL: db.url, PORT: port }, [
      '--role',
      'api',
    ]).then(
      () => assert.fail('the second process listened on a port in use'),
      (error: Error) => error.message,
    );
    // startServiceProcess reports the exit code and stderr of a process that ended early.
    assert.match(second, /exited \(1\)/);
    const stderr = second.split(': ').slice(1).join(': ').trim();
    assert.match(stderr, new RegExp(`127\\.0\\.0\\.1:${port} is already in use`));
    assert.equal(stderr.split('\n').length, 1, stderr);
    assert.doesNotMatch(stderr, /\n\s+at /);
  } finally {
    first.child.kill('SIGTERM');
    assert.equal(await first.exited, 0);
    await db.drop();
  }
});
