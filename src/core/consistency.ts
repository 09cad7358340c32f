/**
 * Consistency tokens: what a command answer hands the client so that a later query can wait
 * until the read models have applied that write ("read your writes").
 *
 * A token names the write exactly: the global position of its last event, and the stream and
 * version it produced. Embedded runners compare positions (they read the global log in order);
 * Kafka-fed runners compare the stream's version (they see each stream in order, but the global
 * order only per partition). Format, version 1: `1:<position>:<streamVersion>:<url-encoded stream id>`.
 */
import { InvalidConsistencyTokenError } from './errors.ts';

export interface ConsistencyToken {
  position: number;
  streamId: string;
  streamVersion: number;
}

const PREFIX = '1:';

export function encodeConsistencyToken(token: ConsistencyToken): string {
  return `${PREFIX}${token.position}:${token.streamVersion}:${encodeURIComponent(token.streamId)}`;
}

/** Parses a token; throws {@link InvalidConsistencyTokenError} when it is not one. */
export function decodeConsistencyToken(text: string): ConsistencyToken {
  const fail = (): never => {
    throw new InvalidConsistencyTokenError(text.length > 200 ? `${text.slice(0, 200)}…` : text);
  };
  if (typeof text !== 'string' || !text.startsWith(PREFIX)) return fail();
  const parts = text.slice(PREFIX.length).split(':');
  if (parts.length !== 3) return fail();
  const [positionText, versionText, encodedStream] = parts as [string, string, string];
  if (!/^\d{1,16}$/.test(positionText) || !/^\d{1,16}$/.test(versionText) || encodedStream === '') {
    return fail();
  }
  let streamId: string;
  try {
    streamId = decodeURIComponent(encodedStream);
  } catch {
    return fail();
  }
  const position = Number(positionText);
  const streamVersion = Number(versionText);
  if (
    !Number.isSafeInteger(position) ||
    !Number.isSafeInteger(streamVersion) ||
    position < 1 ||
    streamVersion < 1
  ) {
    return fail();
  }
  return { position, streamId, streamVersion };
}
