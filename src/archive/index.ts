export { DirectoryArchive, SEGMENT_FORMAT, SEGMENT_VERSION } from './segments.ts';
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
