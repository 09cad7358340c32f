import type { Command, Event } from './messages.ts';

/**
 * A decider is the whole write-side domain model of one kind of stream, as plain data:
 * pure, synchronous functions, no I/O. Time and ids reach it through the command.
 *
 * - `initialState()` is the state before any event;
 * - `evolve(state, event)` folds one event into the state;
 * - `decide(command, state)` returns the events the command causes (possibly none), or throws a
 *   {@link BusinessRuleError} when a rule refuses it.
 */
export interface Decider<State, C extends Command, E extends Event> {
  initialState: () => State;
  evolve: (state: State, event: E) => State;
  decide: (command: C, state: State) => E | readonly E[];
}

/** Folds events into a state, starting from `state` (the decider's initial state by default). */
export function fold<State, E extends Event>(
  decider: Pick<Decider<State, never, E>, 'initialState' | 'evolve'>,
  events: Iterable<E>,
  state: State = decider.initialState(),
): State {
  let current = state;
  for (const event of events) current = decider.evolve(current, event);
  return current;
}

/** `decide` may return one event or many; this always gives an array. */
export function decisionEvents<E extends Event>(decision: E | readonly E[]): readonly E[] {
  return Array.isArray(decision) ? (decision as readonly E[]) : [decision as E];
}
