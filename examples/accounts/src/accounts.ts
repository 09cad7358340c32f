/**
 * Bank accounts, a service written only against Tidemark's public API: a decider, a balance
 * read model, three routes, and `createService` for everything else.
 */
import { BusinessRuleError, CommandHandler, defineProjection, type Decider } from 'tidemark';
import { HttpProblem, commandRoute, queryRoute, schemaOf } from 'tidemark/http';
import { createService, type ServiceKafkaOptions } from 'tidemark/service';

type Event =
  | { type: 'Opened'; data: { owner: string } }
  | { type: 'Deposited'; data: { amountCents: number } };
type Command =
  { type: 'Open'; data: { owner: string } } | { type: 'Deposit'; data: { amountCents: number } };

export const account: Decider<{ open: boolean }, Command, Event> = {
  initialState: () => ({ open: false }),
  evolve: (state, event) => (event.type === 'Opened' ? { open: true } : state),
  decide: (command, state) => {
    if (command.type === 'Open') {
      if (state.open) throw new BusinessRuleError('already_open', 'the account is open');
      return [{ type: 'Opened', data: command.data }];
    }
    if (!state.open) throw new BusinessRuleError('not_open', 'open the account first');
    return [{ type: 'Deposited', data: command.data }];
  },
};

const balances = defineProjection<Event>({
  name: 'balances',
  version: 1,
  handles: ['Opened', 'Deposited'],
  tables: ['balances'],
  async init({ sql, table }) {
    await sql.execute(`CREATE TABLE ${table('balances')} (
      account_id TEXT PRIMARY KEY, owner TEXT NOT NULL, balance_cents BIGINT NOT NULL)`);
  },
  async apply(event, { sql, table }) {
    const id = event.streamId.slice('account-'.length);
    await sql.execute(
      event.type === 'Opened'
        ? `INSERT INTO ${table('balances')} VALUES ($1, $2, 0)`
        : `UPDATE ${table('balances')} SET balance_cents = balance_cents + $2 WHERE account_id = $1`,
      [id, event.type === 'Opened' ? event.data.owner : event.data.amountCents],
    );
  },
});

const params = {
  type: 'object',
  properties: { id: { type: 'string', pattern: '^[a-z0-9-]{1,40}$' } },
};
const object = <T>(properties: Record<string, object>) =>
  schemaOf<T>({ type: 'object', required: Object.keys(properties), properties });
const streamId = (r: { params: { id: string } }) => `account-${r.params.id}`;
const response = (result: { nextExpectedVersion: number }) => ({
  version: result.nextExpectedVersion,
});

export const createAccountsService = (options: {
  storage: string;
  kafka?: ServiceKafkaOptions | undefined;
}) =>
  createService({
    name: 'accounts',
    storage: options.storage,
    projections: [balances],
    ...(options.kafka ? { kafka: options.kafka } : {}),
    routes: ({ store, readModels }) => {
      const handler = new CommandHandler({ decider: account, store });
      const commands = [
        commandRoute({
          method: 'PUT',
          url: '/accounts/:id',
          params,
          body: object<{ owner: string }>({ owner: { type: 'string', minLength: 1 } }),
          handler,
          requireStream: false,
          successStatus: 201,
          streamId,
          command: (r) => ({ type: 'Open', data: { owner: r.body.owner } }),
          response,
        }),
        commandRoute({
          method: 'POST',
          url: '/accounts/:id/deposits',
          params,
          body: object<{ amountCents: number }>({ amountCents: { type: 'integer', minimum: 1 } }),
          handler,
          streamId,
          command: (r) => ({ type: 'Deposit', data: { amountCents: r.body.amountCents } }),
          response,
        }),
      ];
      const balance = queryRoute({
        url: '/accounts/:id',
        params,
        projections: ['balances'],
        handler: async ({ params }) => {
          const table = await readModels.table('balances', 'balances');
          const [row] = await readModels.query<{ owner: string; balance_cents: number }>(
            `SELECT owner, balance_cents FROM ${table} WHERE account_id = $1`,
            [params.id],
          );
          if (!row) throw new HttpProblem(404, 'account_not_found', 'Account not found');
          return { id: params.id, owner: row.owner, balanceCents: Number(row.balance_cents) };
        },
      });
      return { commands, queries: [balance] };
    },
  });
