/**
 * `tidemark/service`: a service in one call (storage, projections, routes, optional Kafka,
 * roles), with its readiness rules and runner metrics.
 */
export {
  ALL_ROLES,
  createService,
  type Role,
  type Service,
  type ServiceAdminOptions,
  type ServiceContext,
  type ServiceKafkaOptions,
  type ServiceOptions,
  type ServiceRoutes,
  type ServiceStatus,
} from './service.ts';
export { authFromEnv, kafkaFromEnv, serve, type ServeOptions } from './entry.ts';
export { judgeReadiness, type ReadinessReport, type ReadinessRules } from './readiness.ts';
export { Registry, createMetricsRegistry } from '../metrics.ts';
