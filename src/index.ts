/**
 * `tidemark`: the core model (no I/O) and the runtime pieces built on its ports.
 */
export * from './core/index.ts';
export * from './projections/index.ts';
