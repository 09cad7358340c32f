/**
 * The default archive: a directory of compressed segment files (format in docs/retention.md).
 *
 * A segment file is `<segmentId>.tmseg.gz`: gzip (node:zlib) of UTF-8 lines of JSON,
 *
 *   line 1      {"format":"tidemark-archive-segment","version":1,"segmentId":…,"events":N,
 *                "minPosition":…,"maxPosition":…}
 *   lines 2..N+1 one event each, in position order: {"position","streamId","streamVersion",
 *                "eventId","type","schemaVersion","data","metadata","recordedAt"}, where data and
 *                metadata are the store's JSON text as a string (copied, never re-encoded) and
 *                recordedAt is milliseconds since the epoch
 *   last line   {"end":true,"events":N}
 *
 * The end line and gzip's CRC make a cut or damaged file fail to read instead of reading short.
 * A file is written beside its final name, synced, renamed, and the directory synced: it is
 * there whole or not at all.
 */
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzip, gzip } from 'node:zlib';
import {
  InvalidArgumentError,
  StorageError,
  type RawStoredEvent,
  type SegmentStore,
} from '../core/index.ts';

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

/** The `format` of line 1. */
export const SEGMENT_FORMAT = 'tidemark-archive-segment';
/** The version of the format this code writes and reads. */
export const SEGMENT_VERSION = 1;
const SEGMENT_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

/** A directory of segment files. */
export class DirectoryArchive implements SegmentStore {
  readonly directory: string;
  #made = false;

  constructor(directory: string) {
    if (typeof directory !== 'string' || directory === '') {
      throw new InvalidArgumentError('directory', 'name the archive directory');
    }
    this.directory = directory;
  }

  /** The file of a segment. */
  fileOf(segmentId: string): string {
    if (!SEGMENT_ID.test(segmentId)) {
      throw new InvalidArgumentError('segmentId', `'${segmentId}' is not a segment id`);
    }
    return join(this.directory, `${segmentId}.tmseg.gz`);
  }

  async write(segmentId: string, events: readonly RawStoredEvent[]): Promise<number> {
    const file = this.fileOf(segmentId);
    if (!this.#made) {
      await mkdir(this.directory, { recursive: true });
      this.#made = true;
    }
    const bytes = await encodeSegment(segmentId, events);
    const partial = `${file}.partial`;
    const handle = await open(partial, 'w');
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(partial, file);
    // The rename is durable once the directory is synced.
    const dir = await open(this.directory, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
    return bytes.length;
  }

  async read(segmentId: string): Promise<RawStoredEvent[]> {
    const file = this.fileOf(segmentId);
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch (error) {
      throw new StorageError(
        `archive segment ${file} cannot be read: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
    return decodeSegment(file, bytes);
  }

  async delete(segmentId: string): Promise<void> {
    const file = this.fileOf(segmentId);
    await rm(`${file}.partial`, { force: true });
    await rm(file, { force: true });
  }
}

/** A segment's bytes: the gzip of its lines (format above). */
export async function encodeSegment(
  segmentId: string,
  events: readonly RawStoredEvent[],
): Promise<Buffer> {
  const lines = [
    JSON.stringify({
      format: SEGMENT_FORMAT,
      version: SEGMENT_VERSION,
      segmentId,
      events: events.length,
      minPosition: events[0]?.position ?? 0,
      maxPosition: events.at(-1)?.position ?? 0,
    }),
  ];
  for (const e of events) {
    lines.push(
      JSON.stringify({
        position: e.position,
        streamId: e.streamId,
        streamVersion: e.streamVersion,
        eventId: e.eventId,
        type: e.type,
        schemaVersion: e.schemaVersion,
        data: e.data,
        metadata: e.metadata,
        recordedAt: e.recordedAt,
      }),
    );
  }
  lines.push(JSON.stringify({ end: true, events: events.length }));
  return gzipAsync(Buffer.from(`${lines.join('\n')}\n`, 'utf8'));
}

/** A segment's events from its bytes; `where` names it in errors. Never reads short. */
export async function decodeSegment(where: string, bytes: Buffer): Promise<RawStoredEvent[]> {
  const damaged = (why: string) => new StorageError(`archive segment ${where}: ${why}`);
  let text: string;
  try {
    text = (await gunzipAsync(bytes)).toString('utf8');
  } catch (error) {
    throw new StorageError(`archive segment ${where} cannot be read: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  let header: { format?: unknown; version?: unknown; events?: unknown };
  let end: { end?: unknown; events?: unknown };
  try {
    header = JSON.parse(lines[0] ?? '') as typeof header;
    end = JSON.parse(lines.at(-1) ?? '') as typeof end;
  } catch {
    throw damaged('no header or end line');
  }
  if (header.format !== SEGMENT_FORMAT) throw damaged('not a Tidemark archive segment');
  if (header.version !== SEGMENT_VERSION) {
    throw damaged(
      `format version ${String(header.version)}; this Tidemark reads ${SEGMENT_VERSION}`,
    );
  }
  const count = lines.length - 2;
  if (end.end !== true || end.events !== count || header.events !== count) {
    throw damaged(`cut short: ${count} event lines, ${String(header.events)} announced`);
  }
  const events: RawStoredEvent[] = new Array(count);
  for (let i = 0; i < count; i++) events[i] = JSON.parse(lines[i + 1]!) as RawStoredEvent;
  return events;
}
