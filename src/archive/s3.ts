/**
 * The archive's second segment store: an S3-compatible object store (AWS S3, or any server that
 * speaks its API). Segment files as objects `<prefix><segmentId>.tmseg.gz`, in the same format
 * as the directory archive (segments.ts). A PutObject is atomic (an object is there whole or not
 * at all), so no rename dance is needed. The client, @aws-sdk/client-s3, is an optional peer
 * dependency: install it to use this store.
 */
import type * as S3 from '@aws-sdk/client-s3';
import {
  InvalidArgumentError,
  StorageError,
  type RawStoredEvent,
  type SegmentStore,
} from '../core/index.ts';
import { decodeSegment, encodeSegment } from './segments.ts';

const SEGMENT_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

export interface S3ArchiveOptions {
  readonly bucket: string;
  /** Key prefix of the segments, e.g. `orders/`. Default none. */
  readonly prefix?: string;
  /**
   * The endpoint of an S3-compatible server (e.g. `http://127.0.0.1:9329`); unset: AWS S3 in
   * `region`.
   */
  readonly endpoint?: string;
  /** Default `us-east-1`. */
  readonly region?: string;
  /** Default: the SDK's own chain (environment, profile, instance role). */
  readonly credentials?: { accessKeyId: string; secretAccessKey: string };
  /** Path-style URLs (`endpoint/bucket/key`), which most S3-compatible servers need. Default: true with an endpoint. */
  readonly forcePathStyle?: boolean;
}

/** Segments as objects in an S3-compatible bucket. Call {@link S3Archive.open}. */
export class S3Archive implements SegmentStore {
  readonly bucket: string;
  readonly prefix: string;
  readonly #client: S3.S3Client;
  readonly #s3: typeof S3;

  private constructor(options: S3ArchiveOptions, s3: typeof S3) {
    this.bucket = options.bucket;
    this.prefix = options.prefix ?? '';
    this.#s3 = s3;
    this.#client = new s3.S3Client({
      region: options.region ?? 'us-east-1',
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      forcePathStyle: options.forcePathStyle ?? options.endpoint !== undefined,
      ...(options.credentials ? { credentials: options.credentials } : {}),
    });
  }

  /** Loads the client library and connects (lazily: the first request opens connections). */
  static async open(options: S3ArchiveOptions): Promise<S3Archive> {
    if (typeof options.bucket !== 'string' || options.bucket === '') {
      throw new InvalidArgumentError('bucket', 'name the bucket');
    }
    let s3: typeof S3;
    try {
      s3 = await import('@aws-sdk/client-s3');
    } catch (error) {
      throw new InvalidArgumentError(
        'archive',
        'the S3 archive needs the @aws-sdk/client-s3 package: install it beside tidemark',
        { cause: error },
      );
    }
    return new S3Archive(options, s3);
  }

  /** The object key of a segment. */
  keyOf(segmentId: string): string {
    if (!SEGMENT_ID.test(segmentId)) {
      throw new InvalidArgumentError('segmentId', `'${segmentId}' is not a segment id`);
    }
    return `${this.prefix}${segmentId}.tmseg.gz`;
  }

  async write(segmentId: string, events: readonly RawStoredEvent[]): Promise<number> {
    const key = this.keyOf(segmentId);
    const body = await encodeSegment(segmentId, events);
    try {
      await this.#client.send(
        new this.#s3.PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: body,
          ContentType: 'application/gzip',
        }),
      );
    } catch (error) {
      throw this.#failed('write', key, error);
    }
    return body.length;
  }

  async read(segmentId: string): Promise<RawStoredEvent[]> {
    const key = this.keyOf(segmentId);
    let bytes: Uint8Array;
    try {
      const answer = await this.#client.send(
        new this.#s3.GetObjectCommand({ Bucket: this.bucket, Key: key }),
      );
      bytes = await answer.Body!.transformToByteArray();
    } catch (error) {
      throw this.#failed('read', key, error);
    }
    return decodeSegment(`s3://${this.bucket}/${key}`, Buffer.from(bytes));
  }

  async delete(segmentId: string): Promise<void> {
    const key = this.keyOf(segmentId);
    try {
      // Deleting a missing key succeeds in S3.
      await this.#client.send(new this.#s3.DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (error) {
      throw this.#failed('delete', key, error);
    }
  }

  /** The segment ids in the bucket under the prefix (for checks and tools). */
  async list(): Promise<string[]> {
    const ids: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.#client.send(
        new this.#s3.ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: this.prefix,
          ...(token ? { ContinuationToken: token } : {}),
        }),
      );
      for (const object of page.Contents ?? []) {
        const name = object.Key!.slice(this.prefix.length);
        if (name.endsWith('.tmseg.gz')) ids.push(name.slice(0, -'.tmseg.gz'.length));
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return ids.sort();
  }

  close(): void {
    this.#client.destroy();
  }

  #failed(what: string, key: string, error: unknown): StorageError {
    return new StorageError(
      `archive segment s3://${this.bucket}/${key}: ${what} failed: ${(error as Error).message}`,
      { cause: error },
    );
  }
}
