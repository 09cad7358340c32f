export { MemoryEventStore, type MemoryEventStoreOptions } from './memory-event-store.ts';
