/**
 * The Fetch request, sent through the library's protocol layer rather than `Consumer.fetch`.
 *
 * Why: for read_committed fetches, `Consumer.fetch` of @platformatic/kafka (1.x, and 2.x up to
 * 2.12.1 at least) removes aborted batches itself before returning, and gets it wrong. It keeps one aborted range per producer id,
 * from the first aborted transaction the broker lists to the **last** ABORT marker of that
 * producer in the response. A transactional producer that is restarted keeps its producer id, and
 * a restart after AddPartitionsToTxn but before any record was written leaves an ABORT marker
 * with no aborted data (the broker does not list such a transaction). Then every **committed**
 * batch between the earlier aborted transaction and that marker is dropped from the response,
 * silently (reproduced against Kafka 4.4; see docs/kafka-client-notes.md). Tidemark filters
 * aborted records itself (records.ts), so it needs the response as the broker sent it.
 *
 * The request is the library's; the response is read by Tidemark's own parser
 * (`parseFetchResponse`), which keeps each partition's record batches as bytes for the record
 * decoder in records.ts instead of an object per record and per header.
 */
import {
  createAPI,
  fetchV13,
  fetchV14,
  fetchV15,
  fetchV16,
  fetchV17,
  type Broker,
  type ConnectionPool,
  type Consumer,
} from '@platformatic/kafka';
import { KafkaOperationError } from './errors.ts';
import { parseFetchResponse, type FetchRequestTopic, type FetchResponse } from './records.ts';

// Fetch v13 and later address topics by id; the port only speaks those. Their responses share
// one layout (v16 adds a tagged field), read by parseFetchResponse.
const FETCH_APIS = [fetchV17, fetchV16, fetchV15, fetchV14, fetchV13].map((v) =>
  createAPI<unknown[], FetchResponse>(1, v.api.version, v.createRequest, parseFetchResponse),
);
type FetchApi = (typeof FETCH_APIS)[number];

/** What one Fetch request asks for. */
export interface RawFetchRequest {
  readonly maxWaitMs: number;
  readonly minBytes: number;
  readonly maxBytes: number;
  /** 0: read_uncommitted, 1: read_committed. */
  readonly isolationLevel: number;
  readonly topics: FetchRequestTopic[];
}

const chosen = new WeakMap<object, Promise<FetchApi>>();

/** The newest Fetch version both sides speak (asked once per client). */
function fetchApiFor(client: Consumer<Buffer, Buffer, Buffer, Buffer>): Promise<FetchApi> {
  let api = chosen.get(client);
  if (!api) {
    api = client.listApis().then((apis) => {
      const fetch = apis.find((a) => a.name === 'Fetch');
      const candidate = FETCH_APIS.find(
        (v) => fetch && v.version >= fetch.minVersion && v.version <= fetch.maxVersion,
      );
      if (!candidate) {
        throw new KafkaOperationError(
          'fetch',
          `the broker speaks Fetch v${fetch?.minVersion}..v${fetch?.maxVersion}; Tidemark needs v13 or later`,
          'UNSUPPORTED_VERSION',
          false,
        );
      }
      return candidate;
    });
    api.catch(() => chosen.delete(client));
    chosen.set(client, api);
  }
  return api;
}

/**
 * Sends one Fetch request to `broker` over `pool` and returns the answer untouched (aborted
 * batches included, with the broker's list of aborted transactions).
 */
export async function fetchRaw(
  client: Consumer<Buffer, Buffer, Buffer, Buffer>,
  pool: ConnectionPool,
  broker: Broker,
  request: RawFetchRequest,
): Promise<FetchResponse> {
  const api = await fetchApiFor(client);
  const connection = await pool.get(broker);
  return api.async(
    connection,
    request.maxWaitMs,
    request.minBytes,
    request.maxBytes,
    request.isolationLevel,
    0, // no fetch session: every request names its partitions
    -1,
    request.topics,
    [],
    '',
  );
}
