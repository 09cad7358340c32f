export {
  tidemarkHttp,
  parseIfMatch,
  type CommandRequest,
  type CommandRoute,
  type ConsistencyWaiter,
  type JsonSchema,
  type QueryRequest,
  type QueryRoute,
  type ReadinessCheck,
  type TidemarkHttpOptions,
} from './plugin.ts';
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
