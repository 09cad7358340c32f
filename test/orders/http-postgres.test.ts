import { createTestDatabase } from '../support/services.ts';
import { ordersHttpSuite } from './http-suite.ts';

ordersHttpSuite({ name: 'PostgreSQL', database: () => createTestDatabase('orders') });
