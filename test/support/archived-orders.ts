/**
 * Test support for archived orders: an Orders service over a backend, with an archive directory
 * of its own, disposed (database and directory too) after the test.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { archiveStreams, type ArchiveProgress } from 'tidemark';
import { orderArchivePolicy } from '../../examples/orders/src/archive-policy.ts';
import { startTestService, type TestService } from './orders.ts';

/**
 * A backend of the archive tests: a fresh database URL (undefined: a SQLite file) and its drop.
 * Test files build it with services.ts's createTestDatabase themselves: scripts/test.mjs starts
 * PostgreSQL for the files that import it.
 */
export interface ArchiveBackend {
  name: string;
  database(): Promise<{ url: string | undefined; drop(): Promise<void> }>;
}

export interface ArchivedOrdersService {
  service: TestService;
  /** The archive's directory of segment files. */
  archive: string;
  /** Archives what the Orders policy lets go (shipped or cancelled orders), of any age. */
  archiveOrders(): Promise<ArchiveProgress>;
  /** A request through the service's app; `body` is sent as JSON. */
  call(
    method: string,
    url: string,
    body?: unknown,
  ): Promise<{ status: number; type: string; body: Record<string, unknown> }>;
}

export async function startArchivedOrdersService(
  backend: ArchiveBackend,
): Promise<ArchivedOrdersService> {
  const database = await backend.database();
  const archive = mkdtempSync(join(tmpdir(), 'tidemark-orders-archive-'));
  const service = await startTestService({
    archiveDirectory: archive,
    ...(database.url ? { databaseUrl: database.url } : {}),
  });
  after(async () => {
    await service.dispose();
    await database.drop();
    rmSync(archive, { recursive: true, force: true });
  });
  const call: ArchivedOrdersService['call'] = async (method, url, body) => {
    const response = await service.app.inject({
      method: method as 'GET',
      url,
      ...(body !== undefined
        ? { payload: JSON.stringify(body), headers: { 'content-type': 'application/json' } }
        : {}),
    });
    return {
      status: response.statusCode,
      type: String(response.headers['content-type']),
      body: response.body === '' ? {} : (response.json() as Record<string, unknown>),
    };
  };
  const archiveOrders = () =>
    archiveStreams({
      tables: service.storage.archive!.tables,
      segments: service.storage.archive!.segments,
      olderThanMs: 0,
      prefix: 'order-',
      policy: orderArchivePolicy,
    });
  return { service, archive, call, archiveOrders };
}
