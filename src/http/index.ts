export { tidemarkHttp, type TidemarkHttpOptions } from './plugin.ts';
export { createHttpApp, type HttpAppOptions } from './app.ts';
export { parseIfMatch, type CommandRequest, type CommandRoute } from './command-routes.ts';
export { type ConsistencyWaiter, type QueryRequest, type QueryRoute } from './query-routes.ts';
export { type ReadinessCheck } from './operational-routes.ts';
export { type JsonSchema } from './validation.ts';
export {
  HttpProblem,
  PROBLEM_CONTENT_TYPE,
  problem,
  problemType,
  type Problem,
} from './problem.ts';
export {
  Counter,
  Gauge,
  Histogram,
  MetricsRegistry,
  METRICS_CONTENT_TYPE,
  type GaugeSample,
} from './metrics.ts';
