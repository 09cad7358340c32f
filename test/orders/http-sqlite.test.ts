import { ordersHttpSuite } from './http-suite.ts';

ordersHttpSuite({
  name: 'SQLite',
  database: async () => ({ url: undefined, drop: async () => {} }),
});
