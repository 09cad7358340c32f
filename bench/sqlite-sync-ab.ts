/**
 * Sequential and concurrent appends on SQLite with the WAL synced inline (SQLite's own sync in
 * COMMIT) against the background sync (fdatasync on libuv's thread pool), in one process, in
 * alternating rounds: `node --conditions=tidemark-source bench/sqlite-sync-ab.ts [concurrency…]`.
 * Prints each mode's median rate and the per-round ratios background / inline.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteDatabase, SqliteEventStore } from 'tidemark/sqlite';

type Mode = 'inline' | 'background';
const modes: Mode[] = ['inline', 'background'];
const dir = mkdtempSync(join(tmpdir(), 'tidemark-sync-ab-'));
const APPENDS = 2000;
const ROUNDS = 8;
const median = (values: number[]) => [...values].sort((x, y) => x - y)[values.length >> 1]!;

for (const concurrency of (process.argv.slice(2).length
  ? process.argv.slice(2)
  : ['1', '8', '64']
).map(Number)) {
  const stores = new Map(
    modes.map((walSync) => [
      walSync,
      new SqliteEventStore(
        new SqliteDatabase(join(dir, `${walSync}-${concurrency}.db`), { walSync }),
      ),
    ]),
  );
  const rates = new Map<Mode, number[]>(modes.map((m) => [m, []]));
  let stream = 0;
  for (let round = 0; round < ROUNDS; round++) {
    for (const mode of round % 2 ? [...modes].reverse() : modes) {
      const store = stores.get(mode)!;
      const started = performance.now();
      for (let i = 0; i < APPENDS / concurrency; i++) {
        await Promise.all(
          Array.from({ length: concurrency }, () =>
            store.appendToStream(`s-${stream++}`, [{ type: 'E', data: { i } }]),
          ),
        );
      }
      rates.get(mode)!.push(APPENDS / ((performance.now() - started) / 1000));
    }
  }
  const inline = rates.get('inline')!;
  const background = rates.get('background')!;
  console.log(
    `${concurrency} in flight: inline ${median(inline).toFixed(0)}/s, background ${median(background).toFixed(0)}/s; ` +
      `background/inline per round: ${inline.map((v, i) => (background[i]! / v).toFixed(2)).join(' ')}`,
  );
  for (const store of stores.values()) {
    await store.close();
  }
}
rmSync(dir, { recursive: true, force: true });
