/**
 * Given / when / then for deciders: the domain's rules as tests that read as specifications.
 *
 * ```ts
 * const spec = deciderSpec(orderDecider);
 * spec.given([created]).when(confirm).then([confirmed]);
 * spec.given([]).when(confirm).thenFails('order_not_found');
 * ```
 */
import assert from 'node:assert/strict';
import {
  BusinessRuleError,
  fold,
  decisionEvents,
  type Command,
  type Decider,
  type Event,
} from '../core/index.ts';

export interface DeciderSpec<State, C extends Command, E extends Event> {
  given(events: readonly E[]): {
    when(command: C): DeciderOutcome<State, E>;
  };
}

export interface DeciderOutcome<State, E extends Event> {
  /** Asserts the command causes exactly these events (compared on type and data). */
  then(expected: readonly E[]): void;
  /** Asserts the command causes no event. */
  thenNothing(): void;
  /** Asserts a business rule refuses the command, with this rule code. */
  thenFails(rule: string): BusinessRuleError;
  /** Asserts `decide` throws something that passes `check`. */
  thenThrows(check: (error: unknown) => boolean): unknown;
  /** Asserts on the state after the given events and the command's events. */
  thenState(expected: State): void;
}

const strip = (e: Event) => ({ type: e.type, data: e.data });

export function deciderSpec<State, C extends Command, E extends Event>(
  decider: Decider<State, C, E>,
): DeciderSpec<State, C, E> {
  return {
    given(events) {
      return {
        when(command) {
          const run = () => decisionEvents(decider.decide(command, fold(decider, events)));
          const failure = (): unknown => {
            try {
              run();
            } catch (error) {
              return error;
            }
            return assert.fail(`expected '${command.type}' to be refused, but it was accepted`);
          };
          return {
            then(expected) {
              assert.deepEqual(run().map(strip), expected.map(strip));
            },
            thenNothing() {
              assert.deepEqual(run().map(strip), []);
            },
            thenFails(rule) {
              const error = failure();
              assert.ok(
                error instanceof BusinessRuleError,
                `expected a BusinessRuleError '${rule}', got ${String(error)}`,
              );
              assert.equal(error.rule, rule);
              return error;
            },
            thenThrows(check) {
              const error = failure();
              assert.ok(check(error), `unexpected error: ${String(error)}`);
              return error;
            },
            thenState(expected) {
              assert.deepEqual(fold(decider, run(), fold(decider, events)), expected);
            },
          };
        },
      };
    },
  };
}
