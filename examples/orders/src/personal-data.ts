/**
 * The Orders service's personal data: what is personal (an order's shipping address, whose data
 * subject is the customer), and the route that forgets a customer (docs/orders-api.md).
 */
import type { FastifyInstance } from 'fastify';
import {
  definePersonalData,
  forgetSubject,
  isTidemarkError,
  type EventStore,
  type Logger,
  type ProjectionDefinition,
  type ReadModels,
  type ProjectionSink,
  type SubjectKeyStore,
} from 'tidemark';

/** `OrderCreated.shippingAddress` is the customer's personal data, sealed under their key. */
export const orderPersonalData = definePersonalData({
  OrderCreated: { subject: 'customerId', fields: ['shippingAddress'] },
});

export interface ForgetRouteOptions {
  keys: SubjectKeyStore;
  sink: ProjectionSink;
  projections: readonly ProjectionDefinition[];
  /** For the wait that closes the race with projections in flight (ForgetSubjectOptions.settle). */
  store: EventStore;
  readModels: ReadModels;
  logger?: Logger;
}

/**
 * `DELETE /customers/{customerId}/personal-data`: forgets the customer. 204 when forgotten, now
 * or before (idempotent: a repeat also finishes the redaction of read models); 404
 * `unknown_subject` when no personal data of the customer was ever stored. Errors are answered
 * as problem+json by the `tidemark/http` plugin's error handler.
 */
export function registerForgetRoute(app: FastifyInstance, options: ForgetRouteOptions): void {
  app.delete<{ Params: { customerId: string } }>(
    '/customers/:customerId/personal-data',
    {
      schema: {
        params: {
          type: 'object',
          required: ['customerId'],
          properties: { customerId: { type: 'string', minLength: 1, maxLength: 128 } },
        },
      },
    },
    async (request, reply) => {
      try {
        await forgetSubject(request.params.customerId, {
          keys: options.keys,
          sink: options.sink,
          projections: options.projections,
          settle: {
            store: options.store,
            waitFor: (token, projections, timeoutMs) =>
              options.readModels.waitFor(token, projections, timeoutMs),
          },
          ...(options.logger ? { logger: options.logger } : {}),
        });
      } catch (error) {
        if (!isTidemarkError(error, 'subject_forgotten')) throw error;
      }
      return reply.code(204).send();
    },
  );
}
