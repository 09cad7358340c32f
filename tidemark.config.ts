/**
 * What the `tidemark` CLI needs to know of this repository's application (the Orders reference
 * service): its projections, for rebuilds and dead-letter retries, its personal data, and its
 * Kafka relay's name.
 */
import { defineConfig } from 'tidemark';
import { orderPersonalData } from './examples/orders/src/personal-data.ts';
import { orderProjections } from './examples/orders/src/projections.ts';

export default defineConfig({
  projections: orderProjections,
  personalData: orderPersonalData,
  relay: { name: 'orders' },
  kafka: {
    topics: ['order-events'],
    groupPrefix: 'tidemark-orders',
    sources: ['tidemark://orders'],
  },
});
