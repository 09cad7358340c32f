// Interoperability: kcat (librdkafka, a client nobody here wrote, installed by scripts/kcat.mjs)
// reads what the relay published, read_committed, and the records follow
// docs/kafka-wire-format.md; and librdkafka's Java-compatible partitioner puts each stream id on
// the partition the relay chose.
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { RecordedEvent } from 'tidemark';
import { KafkaAdmin, KafkaProducer, encodeEvent, partitionFor } from '../../src/kafka/internal.ts';
import { MemoryEventStore } from 'tidemark/memory';
import { kafkaBrokers, kafkaConnection, uniqueName, uniqueTopic } from '../support/services.ts';
import { publishAll } from './support.ts';

const run = promisify(execFile);
const root = new URL('../../', import.meta.url).pathname;

/** One line of `kcat -J` output. */
interface KcatRecord {
  topic: string;
  partition: number;
  offset: number;
  key: string | null;
  payload: string | null;
  headers?: string[];
}

describe('kafka: a plain client (kcat) reads the documented format', () => {
  let kcat: string;
  let admin: KafkaAdmin;
  const topic = uniqueTopic('kcat');
  const scratch = uniqueTopic('kcat-partitioner');
  const progressTopic = uniqueTopic('kcat-progress');
  const store = new MemoryEventStore();

  before(async () => {
    const found = spawnSync(process.execPath, [`${root}scripts/kcat.mjs`], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    assert.equal(found.status, 0, 'scripts/kcat.mjs could not provide kcat');
    kcat = found.stdout.trim();
    admin = new KafkaAdmin(kafkaConnection());
  });
  after(async () => {
    for (const t of [topic, scratch, progressTopic]) await admin.deleteTopic(t, { ifExists: true });
    await admin.close();
  });

  async function consume(name: string): Promise<KcatRecord[]> {
    const { stdout } = await run(
      kcat,
      [
        '-C',
        '-b',
        kafkaBrokers().join(','),
        '-t',
        name,
        '-o',
        'beginning',
        '-e',
        '-q',
        '-J',
        '-X',
        'isolation.level=read_committed',
      ],
      { maxBuffer: 64 * 1024 * 1024 },
    );
    return stdout
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as KcatRecord);
  }

  it(
    'sees every committed event once, in stream order, with the documented headers',
    { timeout: 120_000 },
    async () => {
      const streams = Array.from({ length: 20 }, (_, i) => `order-${i}-ü`);
      for (let round = 0; round < 5; round++) {
        for (const [i, stream] of streams.entries()) {
          await store.appendToStream(stream, [
            {
              type: round === 0 ? 'OrderCreated' : 'ItemAdded',
              data: { round, sku: `SKU-${i}`, note: 'ünïcødé' },
              metadata: {
                correlationId: `corr-${round}`,
                causationId: `cause-${round}`,
                traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
                tenant: 'acme',
              },
            },
          ]);
        }
      }
      await publishAll(kafkaConnection(), store, topic, {
        partitions: 3,
        progressTopic,
        name: uniqueName('relay'),
      });
      // An aborted transaction in between: read_committed clients must not see it.
      const producer = new KafkaProducer(kafkaConnection(), {
        transactionalId: uniqueName('abort'),
      });
      const [first] = await store.readAll({ maxCount: 1 });
      const tx = await producer.beginTransaction();
      await tx.send([
        encodeEvent({ ...first!, eventId: 'aborted-event' } as RecordedEvent, {
          topic,
          source: 'tidemark://test',
        }),
      ]);
      await tx.abort();
      await producer.close();

      const stored = await store.readAll({ maxCount: 1000 });
      const byId = new Map(stored.map((e) => [e.eventId, e]));
      const records = await consume(topic);
      assert.equal(records.length, stored.length, 'every event, none of the aborted one');

      const lastVersion = new Map<string, number>();
      const partitionOf = new Map<string, number>();
      for (const record of records) {
        // Decoded by hand, following docs/kafka-wire-format.md, not with Tidemark's decoder.
        const headers = new Map<string, string>();
        const list = record.headers ?? [];
        for (let i = 0; i < list.length; i += 2) headers.set(list[i]!, list[i + 1]!);
        const event = byId.get(headers.get('ce_id')!);
        assert.ok(event, `a stored event: ${headers.get('ce_id')}`);
        assert.equal(record.key, event.streamId);
        assert.deepEqual(JSON.parse(record.payload!), event.data);
        assert.equal(headers.get('content-type'), 'application/json');
        assert.equal(headers.get('ce_specversion'), '1.0');
        assert.equal(headers.get('ce_source'), 'tidemark://test');
        assert.equal(headers.get('ce_type'), event.type);
        assert.equal(headers.get('ce_subject'), event.streamId);
        assert.equal(new Date(headers.get('ce_time')!).getTime(), event.recordedAt.getTime());
        assert.equal(headers.get('ce_streamversion'), String(event.streamVersion));
        assert.equal(headers.get('ce_position'), String(event.position));
        assert.equal(headers.get('ce_schemaversion'), String(event.schemaVersion));
        assert.equal(headers.get('ce_correlationid'), event.metadata.correlationId);
        assert.equal(headers.get('ce_causationid'), event.metadata.causationId);
        assert.equal(headers.get('traceparent'), event.metadata.traceparent);
        assert.deepEqual(JSON.parse(headers.get('ce_metadata')!), { tenant: 'acme' });
        const version = Number(headers.get('ce_streamversion'));
        assert.equal(version, (lastVersion.get(event.streamId) ?? 0) + 1, 'per-stream order');
        lastVersion.set(event.streamId, version);
        assert.equal(partitionOf.get(event.streamId) ?? record.partition, record.partition);
        partitionOf.set(event.streamId, record.partition);
      }
      assert.equal(lastVersion.size, 20);
      assert.ok(new Set(partitionOf.values()).size > 1, 'streams spread over partitions');

      // librdkafka's murmur2 partitioner is Java's: keys produced by kcat land where ours did.
      await admin.createTopic({ name: scratch, partitions: 3 });
      const input = [...partitionOf.keys()].map((key) => `${key}\t${key}`).join('\n');
      const produce = spawnSync(
        kcat,
        [
          '-P',
          '-b',
          kafkaBrokers().join(','),
          '-t',
          scratch,
          '-K',
          '\t',
          '-X',
          'topic.partitioner=murmur2_random',
        ],
        { input: `${input}\n`, encoding: 'utf8' },
      );
      assert.equal(produce.status, 0, produce.stderr);
      const theirs = await consume(scratch);
      assert.equal(theirs.length, partitionOf.size);
      for (const record of theirs) {
        assert.equal(record.partition, partitionOf.get(record.key!), `partition of ${record.key}`);
        assert.equal(record.partition, partitionFor(record.key!, 3));
      }
    },
  );
});
