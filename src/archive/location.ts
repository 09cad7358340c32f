/**
 * The segment store a location names, for entry points (the CLI): a directory path, or
 * `s3://<bucket>/<prefix>` for an S3-compatible object store.
 */
import type { SegmentStore } from '../core/index.ts';
import { S3Archive } from './s3.ts';
import { DirectoryArchive } from './segments.ts';

/**
 * `s3://bucket/prefix`: an {@link S3Archive}; the endpoint of an S3-compatible server comes from
 * `TIDEMARK_S3_ENDPOINT` (unset: AWS S3), the region from `AWS_REGION`, credentials from the
 * AWS SDK's own chain (`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, profiles, roles). Anything
 * else: a {@link DirectoryArchive}.
 */
export async function segmentStoreAt(
  location: string,
  env: Readonly<Record<string, string | undefined>>,
): Promise<SegmentStore> {
  const s3 = /^s3:\/\/([^/]+)\/?(.*)$/.exec(location);
  if (!s3) return new DirectoryArchive(location);
  const prefix = s3[2] && !s3[2].endsWith('/') ? `${s3[2]}/` : (s3[2] ?? '');
  return S3Archive.open({
    bucket: s3[1]!,
    prefix,
    ...(env.TIDEMARK_S3_ENDPOINT ? { endpoint: env.TIDEMARK_S3_ENDPOINT } : {}),
    ...(env.AWS_REGION ? { region: env.AWS_REGION } : {}),
  });
}
