/**
 * `tidemark`: the core model (no I/O) and the runtime pieces built on its ports.
 */
export * from './core/index.ts';
export * from './projections/index.ts';
export * from './archive/index.ts';
export {
  openStorage,
  redactUrl,
  sqlitePath,
  type OpenStorageOptions,
  type Storage,
} from './storage.ts';
export { defineConfig, type TidemarkConfig } from './config.ts';
export * from './personal-data/index.ts';
