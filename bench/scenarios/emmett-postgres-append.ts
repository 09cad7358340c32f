/**
 * Emmett's rows for the PostgreSQL append scenarios of postgres-append.ts (same scenario names,
 * op counts, streams and connections), so the table sets them beside Tidemark and raw pg.
 * Emmett runs in its own process, in a database of its own, right after those scenarios.
 */
import { emmettMissing, interleave, requireDatabaseUrl, type Result } from '../lib.ts';
import { freshDatabase } from '../pg-scratch.ts';
import type { BenchContext } from '../run.ts';
import type { AppendArgs } from '../workload.ts';

export async function emmettPostgresAppend(ctx: BenchContext): Promise<Result[]> {
  const url = requireDatabaseUrl();
  const ops = ctx.quick ? 1000 : 5000;
  const plans = [
    {
      scenario: 'postgres append 1 event per call',
      perCall: 1,
      ops,
      concurrency: 1,
      streams: 1000,
    },
    {
      scenario: 'postgres append 10 events per call',
      perCall: 10,
      ops,
      concurrency: 1,
      streams: 1000,
    },
    {
      scenario: 'postgres append, 32 concurrent writers',
      perCall: 1,
      ops: ops * 2,
      concurrency: 32,
      streams: 4096,
    },
  ];
  const skip = emmettMissing();
  const results: Result[] = [];
  for (const plan of plans) {
    const db = skip ? undefined : await freshDatabase(url, 'append');
    try {
      const args: AppendArgs = {
        target: db?.url ?? '',
        perCall: plan.perCall,
        streams: plan.streams,
        poolSize: Math.max(2, plan.concurrency),
      };
      results.push(
        ...(await interleave(
          plan.scenario,
          [
            {
              impl: 'emmett',
              module: 'bench/emmett/postgres.ts',
              fn: 'emmettAppend',
              args,
              ...(skip ? { skip } : {}),
            },
          ],
          {
            unit: `events/s, ${plan.perCall} per append with an expected version${plan.concurrency > 1 ? `, ${plan.concurrency} in flight, ${plan.concurrency} connections` : ''}`,
            ops: plan.ops,
            slices: 1,
            concurrency: plan.concurrency,
            itemsPerOp: plan.perCall,
          },
        )),
      );
    } finally {
      await db?.drop();
    }
  }
  return results;
}
