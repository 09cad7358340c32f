import { adminApiSuite } from './admin-suite.ts';

adminApiSuite({ name: 'SQLite', database: async () => ({ url: undefined, drop: async () => {} }) });
