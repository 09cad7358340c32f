/**
 * What the `tidemark` CLI needs to know of this repository's application (the Orders reference
 * service): its projections, for rebuilds and dead-letter retries, and its Kafka relay's name.
 */
import { defineConfig } from 'tidemark';
import { orderArchivePolicy } from './examples/orders/src/archive-policy.ts';
import { orderProjections } from './examples/orders/src/projections.ts';

export default defineConfig({
  projections: orderProjections,
  relay: { name: 'orders' },
  kafka: {
    topics: ['order-events'],
    groupPrefix: 'tidemark-orders',
    sources: ['tidemark://orders'],
    categories: { order: 'order-events' },
  },
  // `tidemark streams archive --older-than 90d --archive DIR` (or TIDEMARK_ARCHIVE_DIR).
  archive: { prefix: 'order-', policy: orderArchivePolicy },
});
