export { DirectoryArchive, SEGMENT_FORMAT, SEGMENT_VERSION } from './segments.ts';
export { S3Archive, type S3ArchiveOptions } from './s3.ts';
export {
  ArchiveAwareStore,
  type ArchivableStore,
  type ArchiveAwareStoreOptions,
} from './archive-aware-store.ts';
export {
  archiveStreams,
  parseAge,
  type ArchiveProgress,
  type ArchiveStreamsOptions,
} from './archiver.ts';
export { segmentStoreAt } from './location.ts';
