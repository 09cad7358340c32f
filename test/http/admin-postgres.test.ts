import { createTestDatabase } from '../support/services.ts';
import { adminApiSuite } from './admin-suite.ts';

adminApiSuite({ name: 'PostgreSQL', database: () => createTestDatabase('admin') });
