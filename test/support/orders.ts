/**
 * Test support for the Orders service: an in-process service on a fresh SQLite file, and
 * helpers that read what the store holds.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createOrdersService,
  type OrdersService,
  type OrdersServiceOptions,
} from '../../examples/orders/src/app.ts';

export interface TestService extends OrdersService {
  dir: string;
  databaseUrl: string;
  /** Stops the service and removes its files. */
  dispose(): Promise<void>;
}

export async function startTestService(
  options: Partial<OrdersServiceOptions> = {},
): Promise<TestService> {
  const dir = mkdtempSync(join(tmpdir(), 'tidemark-orders-'));
  const databaseUrl = options.databaseUrl ?? join(dir, 'orders.db');
  const service = await createOrdersService({ ...options, databaseUrl });
  await service.start();
  return {
    ...service,
    dir,
    databaseUrl,
    async dispose() {
      await service.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const json = (body: unknown) => ({
  payload: JSON.stringify(body),
  headers: { 'content-type': 'application/json' },
});
