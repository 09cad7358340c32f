import { describe, it } from 'node:test';
import { MemoryEventStore } from 'tidemark/memory';
import { eventStoreContract } from 'tidemark/testing';

eventStoreContract(
  { describe, it },
  {
    name: 'memory',
    fixture: async () => {
      const store = new MemoryEventStore();
      const others: MemoryEventStore[] = [];
      return {
        store,
        reopen: async ({ upcasters }) => {
          const other = store.reopen(upcasters ? { upcasters } : {});
          others.push(other);
          return other;
        },
        dispose: async () => {
          for (const s of [store, ...others]) await s.close();
        },
      };
    },
  },
);
