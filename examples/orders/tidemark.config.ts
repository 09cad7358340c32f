/**
 * What the `tidemark` CLI needs to know of the Orders service: its projections, for rebuilds and
 * dead-letter retries, its personal data (CLI reads and rebuilds open sealed fields), and its
 * Kafka relay's name. The repository's own tidemark.config.ts re-exports it (a source checkout);
 * `npm run build` compiles it to dist-examples/orders/tidemark.config.js, the config of the
 * compiled service (production, or a Node that does not strip types):
 * `TIDEMARK_CONFIG=dist-examples/orders/tidemark.config.js`.
 */
import { defineConfig } from 'tidemark';
import { orderArchivePolicy } from './src/archive-policy.ts';
import { orderPersonalData } from './src/personal-data.ts';
import { orderProjections } from './src/projections.ts';

export default defineConfig({
  projections: orderProjections,
  personalData: orderPersonalData,
  relay: { name: 'orders' },
  kafka: {
    topics: ['order-events'],
    groupPrefix: 'tidemark-orders',
    sources: ['tidemark://orders'],
    // What a rebuild from Kafka fills from the store when retention dropped it (docs/retention.md).
    categories: { order: 'order-events' },
  },
  // `tidemark streams archive --older-than 90d --archive DIR` (or TIDEMARK_ARCHIVE_DIR).
  archive: { prefix: 'order-', policy: orderArchivePolicy },
});
