/**
 * The console's calls to its API (under the path the server put in `data-api`). A bearer token,
 * when the service requires one, is kept for this tab only (sessionStorage) and sent on every call.
 */
const base = document.body.dataset.api ?? '/admin/api';
const TOKEN_KEY = 'tidemark-admin-token';

export const refreshMs = Number(document.body.dataset.refreshMs ?? 2000) || 2000;

/** A problem document answered by the API (RFC 9457). */
export class ApiProblem extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY) ?? '',
  set: (value: string) =>
    value ? sessionStorage.setItem(TOKEN_KEY, value) : sessionStorage.removeItem(TOKEN_KEY),
};

export async function api<T>(path: string, method: 'GET' | 'POST' = 'GET'): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  const bearer = token.get();
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  const response = await fetch(`${base}${path}`, { method, headers });
  const body = (await response.json().catch(() => ({}))) as Record<string, unknown>;
  if (!response.ok) {
    throw new ApiProblem(
      response.status,
      String(body.code ?? 'error'),
      String(body.detail ?? body.title ?? response.statusText),
    );
  }
  return body as T;
}

export const enc = encodeURIComponent;

export interface VersionStatus {
  name: string;
  version: number;
  codeVersion: number;
  deployedCodeVersion: number | null;
  feed: 'store' | 'kafka';
  state: 'active' | 'building' | 'retired';
  position: number;
  head?: number;
  lagEvents: number | null;
  lagSeconds: number | null;
  parked: number;
  gaps: number;
  running: boolean | null;
  /** Kafka-fed: each partition's stored offset and end. */
  partitions?: { topic: string; partition: number; offset: number; end: number; lag: number }[];
  lastError?: string;
  note?: string;
}

export interface RebuildJob {
  id: number;
  projection: string;
  version: number | undefined;
  from: string | undefined;
  state: 'starting' | 'building' | 'switched' | 'done' | 'failed';
  done: number;
  total: number;
  startedAt: string;
  finishedAt: string | undefined;
  dropped: number[];
  error: string | undefined;
}

export interface Overview {
  refreshMs: number;
  head: number;
  feeds: string[];
  runsProjections: boolean;
  relay: boolean;
  streamKinds: string[];
  projections: { name: string; codeVersion: number }[];
}

export interface RecordedEvent {
  eventId: string;
  streamId: string;
  streamVersion: number;
  position: number;
  type: string;
  schemaVersion: number;
  data: unknown;
  metadata: unknown;
  recordedAt: string;
}

export interface Parked {
  projection: string;
  version: number;
  reason: string;
  error: string;
  attempts: number;
  parkedAt: string;
  event: RecordedEvent;
}

export interface RelayView {
  source: 'process' | 'progress';
  name: string;
  state: string;
  storeCheck?: string;
  position: number;
  head: number;
  backlog: number;
  pastHead: number;
  eventsPerSecond?: number;
  lastError?: string | null;
  refusal?: { reason: string; message: string } | null;
  parked: {
    streamId: string;
    streamVersion: number;
    position: number;
    type: string;
    bytes: number;
    limit: number;
  }[];
}
