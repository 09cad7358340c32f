export { tidemarkHttp, type TidemarkHttpOptions } from './plugin.ts';
export { createHttpApp, type HttpAppOptions } from './app.ts';
export {
  commandRoute,
  parseIfMatch,
  type AnyCommandRoute,
  type CommandRequest,
  type CommandRoute,
} from './command-routes.ts';
export {
  queryRoute,
  type AnyQueryRoute,
  type ConsistencyWaiter,
  type QueryRequest,
  type QueryRoute,
} from './query-routes.ts';
export {
  actionRoute,
  type ActionRequest,
  type ActionRoute,
  type AnyActionRoute,
} from './action-routes.ts';
export { type ReadinessCheck } from './operational-routes.ts';
export { schemaOf, type JsonSchema, type PathParams, type TypedSchema } from './validation.ts';
export {
  HttpProblem,
  PROBLEM_CONTENT_TYPE,
  problem,
  problemType,
  type Problem,
} from './problem.ts';
export { Registry, createMetricsRegistry } from '../metrics.ts';
export {
  DEFAULT_ROUTE_ROLES,
  ROLES,
  createAuthenticator,
  principalOf,
  type AuthHook,
  type AuthOptions,
  type Authenticator,
  type JwtAuthOptions,
  type OffAuthOptions,
  type Principal,
  type RouteKind,
  type RouteRoles,
} from './auth.ts';
export {
  ADMIN_PROBLEM_CODES,
  tidemarkAdmin,
  type AdminConsoleOptions,
  type AdminProblemCode,
  type AdminRelaySource,
  type AdminStreamKind,
} from './admin/plugin.ts';
export { type RebuildJob } from './admin/rebuilds.ts';
