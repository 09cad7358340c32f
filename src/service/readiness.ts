/**
 * The readiness rules of a service (docs/operations.md). A process is ready when:
 * - its store answers (the head position is read);
 * - none of the projections it runs is stopped, and, when a bound is set, none lags more events
 *   than the bound;
 * - the relay it runs (if any) is running: retrying, refused, fenced or stopped is not ready.
 * The details name what was judged, so an operator sees why.
 */
import type { ProjectionStatus } from '../projections/index.ts';
import type { RelayStatus } from '../kafka/relay.ts';

export interface ReadinessRules {
  /** A projection lagging more events than this makes the process not ready. Default: no bound. */
  maxLagEvents?: number;
}

export interface ReadinessReport {
  ready: boolean;
  details: {
    head: number;
    roles: readonly string[];
    relay?: {
      state: RelayStatus['state'];
      position: number;
      backlog: number;
      pastHead: number;
      parkedStreams: number;
      refusal?: RelayStatus['refusal'];
    };
    projections: { name: string; version: number; state: string; lagEvents: number }[];
  };
}

export function judgeReadiness(
  rules: ReadinessRules,
  seen: {
    head: number;
    roles: readonly string[];
    projections: readonly ProjectionStatus[];
    relay: RelayStatus | undefined;
  },
): ReadinessReport {
  const { relay, projections } = seen;
  const lagging = projections.filter(
    (p) =>
      p.state === 'stopped' ||
      (rules.maxLagEvents !== undefined && p.lagEvents > rules.maxLagEvents),
  );
  return {
    ready: lagging.length === 0 && (relay === undefined || relay.state === 'running'),
    details: {
      head: seen.head,
      roles: seen.roles,
      ...(relay
        ? {
            relay: {
              state: relay.state,
              position: relay.position,
              backlog: relay.backlog,
              pastHead: relay.pastHead,
              parkedStreams: relay.parked.length,
              ...(relay.refusal ? { refusal: relay.refusal } : {}),
            },
          }
        : {}),
      projections: projections.map(({ name, version, state, lagEvents }) => ({
        name,
        version,
        state,
        lagEvents,
      })),
    },
  };
}
