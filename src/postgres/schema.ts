/**
 * The event store's tables and its append function, per schema.
 *
 * Never edit a released migration: add the next one.
 */
import type { Migration } from '../core/index.ts';
import { quoteIdent } from './connection.ts';

/** FNV-1a, 64-bit, as a signed decimal: stable advisory lock keys derived from names. */
export function lockKey(text: string): string {
  let hash = 0xcbf29ce484222325n;
  for (const byte of new TextEncoder().encode(text)) {
    hash ^= BigInt(byte);
    hash = BigInt.asUintN(64, hash * 0x100000001b3n);
  }
  return BigInt.asIntN(64, hash).toString();
}

/**
 * The two-key advisory lock that orders position assignment (see `tm_append`). Its key space
 * (two int4) is apart from the one-int8 keys used for streams and migrations, so a hash
 * collision can never make a stream lock block the sequencer.
 */
export function sequencerLockKeys(schema: string): [number, number] {
  const key = BigInt(lockKey(`tidemark:sequencer:${schema}`));
  return [Number(BigInt.asIntN(32, key >> 32n)), Number(BigInt.asIntN(32, key))];
}

/**
 * The class of the advisory locks that mark appends in flight (one per transaction id, see
 * `tm_horizon`): next to the sequencer's, never equal to it.
 */
export function appenderLockClass(schema: string): number {
  return (sequencerLockKeys(schema)[0] + 1) | 0;
}

/** An xid8 expression as the int4 key of its appender lock (the low 32 bits). */
const xidKey = (xid: string) => `((${xid}::text::bigint % 4294967296) - 2147483648)::integer`;

/** How `tm_append` receives an expected version: a version, or one of these. */
export const EXPECT_ANY = -1;
export const EXPECT_STREAM_EXISTS = -2;

/** The event store's migrations for `schema`. */
export function eventStoreMigrations(schema: string): readonly Migration[] {
  const q = quoteIdent(schema);
  const [classId, objId] = sequencerLockKeys(schema);
  const streamSeed = lockKey(`tidemark:stream:${schema}`);
  const appenders = appenderLockClass(schema);
  return [
    {
      version: 1,
      description: 'events, streams, snapshots, idempotency, tm_append',
      sql: `
        -- CACHE 1: with a per-session cache, sessions would hand out positions out of order.
        CREATE SEQUENCE tm_events_position_seq AS bigint START 1 CACHE 1;

        CREATE TABLE tm_events (
          position bigint PRIMARY KEY,
          -- The inserting transaction; readAll returns a row only once no transaction that
          -- could still commit a lower position is running (see tm_append and docs/postgres.md).
          tx_id xid8 NOT NULL,
          -- "C": byte order, the same as SQLite's and independent of the database's locale, so
          -- keyset pages over stream ids are stable.
          stream_id text COLLATE "C" NOT NULL,
          stream_version bigint NOT NULL,
          event_id text NOT NULL,
          type text NOT NULL,
          schema_version integer NOT NULL,
          data jsonb NOT NULL,
          metadata jsonb NOT NULL,
          recorded_at timestamptz NOT NULL,
          CONSTRAINT tm_events_stream_version_key UNIQUE (stream_id, stream_version),
          CONSTRAINT tm_events_event_id_key UNIQUE (event_id)
        );
        ALTER SEQUENCE tm_events_position_seq OWNED BY tm_events.position;

        CREATE TABLE tm_streams (
          stream_id text COLLATE "C" PRIMARY KEY,
          version bigint NOT NULL,
          position bigint NOT NULL,
          updated_at timestamptz NOT NULL
        );

        CREATE TABLE tm_snapshots (
          stream_id text COLLATE "C" PRIMARY KEY,
          stream_version bigint NOT NULL,
          state_version integer NOT NULL,
          state jsonb NOT NULL,
          taken_at timestamptz NOT NULL
        );

        CREATE TABLE tm_idempotency (
          key text PRIMARY KEY,
          fingerprint text NOT NULL,
          -- Who holds the claim: lets a claim that lost its answer to a broken connection be
          -- repeated and recognised as its own.
          token text NOT NULL,
          response jsonb,
          claimed_at bigint NOT NULL,
          completed_at bigint
        );

        -- One append, in one statement: check the expected version, take positions, insert the
        -- events, move the stream. p_events is a JSON array of {i: id, t: type, s: schema
        -- version, d: data, m: metadata}. Returns the version the stream had, and the position
        -- of the first event (NULL when the expectation failed: then nothing was written).
        -- p_expected: a version (0: no stream), ${EXPECT_ANY}: any, ${EXPECT_STREAM_EXISTS}: the stream exists.
        CREATE FUNCTION tm_append(
          p_stream text,
          p_expected bigint,
          p_events jsonb,
          p_recorded_at timestamptz,
          OUT current_version bigint,
          OUT first_position bigint
        ) LANGUAGE plpgsql AS $tm_append$
        DECLARE
          v_count integer := jsonb_array_length(p_events);
          v_locked boolean := false;
        BEGIN
          -- Appends to one stream take turns: a transaction-level advisory lock, held to commit.
          -- Unlike SELECT ... FOR UPDATE it takes no transaction id, and it also covers a stream
          -- that has no row yet.
          PERFORM pg_advisory_xact_lock(hashtextextended(p_stream, ${streamSeed}));
          SELECT s.version INTO current_version FROM ${q}.tm_streams s WHERE s.stream_id = p_stream;
          current_version := coalesce(current_version, 0);
          IF NOT (p_expected = ${EXPECT_ANY}
                  OR (p_expected = ${EXPECT_STREAM_EXISTS} AND current_version > 0)
                  OR p_expected = current_version) THEN
            RETURN;
          END IF;

          -- Gap safety rests on one invariant: transaction ids and positions are handed out in
          -- the same order. Readers return a row only when its transaction id is below the
          -- oldest running one, so a transaction that took its id before ours must also hold
          -- lower positions. Hence the id is taken here, together with the positions, under a
          -- short lock: and a transaction that already has an id cannot append.
          IF pg_current_xact_id_if_assigned() IS NOT NULL THEN
            RAISE EXCEPTION 'tm_append must be the first write of its transaction'
              USING ERRCODE = 'TM001',
                    HINT = 'append in a transaction of its own, before any other write';
          END IF;
          BEGIN
            -- A session-level lock, released right after: a transaction-level one would be held
            -- until commit and make every append wait for the previous one's disk flush.
            PERFORM pg_advisory_lock(${classId}, ${objId});
            v_locked := true;
            PERFORM pg_current_xact_id();
            first_position := nextval('${q}.tm_events_position_seq');
            IF v_count > 1 THEN
              -- Every caller of the sequence holds the lock, so the block is ours alone.
              PERFORM setval('${q}.tm_events_position_seq', first_position + v_count - 1);
            END IF;
            PERFORM pg_advisory_unlock(${classId}, ${objId});
          EXCEPTION WHEN query_canceled OR others THEN
            -- A session lock outlives the transaction: never leave it behind.
            IF v_locked THEN
              PERFORM pg_advisory_unlock(${classId}, ${objId});
            END IF;
            RAISE;
          END;

          INSERT INTO ${q}.tm_events (position, tx_id, stream_id, stream_version, event_id, type,
                                      schema_version, data, metadata, recorded_at)
          SELECT first_position + e.n - 1, pg_current_xact_id(), p_stream, current_version + e.n,
                 e.v ->> 'i', e.v ->> 't', (e.v ->> 's')::integer, e.v -> 'd', e.v -> 'm',
                 p_recorded_at
          FROM jsonb_array_elements(p_events) WITH ORDINALITY AS e (v, n);

          INSERT INTO ${q}.tm_streams (stream_id, version, position, updated_at)
          VALUES (p_stream, current_version + v_count, first_position + v_count - 1, p_recorded_at)
          ON CONFLICT (stream_id) DO UPDATE
            SET version = excluded.version, position = excluded.position,
                updated_at = excluded.updated_at;
        END
        $tm_append$;
      `,
    },
    {
      version: 2,
      description: 'readers wait for appends in flight only, not every transaction (tm_horizon)',
      sql: `
        -- Version 1 read the log up to the oldest transaction running anywhere in the cluster, so
        -- any long write transaction (a batch job, a session idle in a transaction) held readers
        -- back. From here on an append marks itself while in flight, with a transaction-level
        -- advisory lock keyed by its transaction id, and readers wait only for those.
        CREATE OR REPLACE FUNCTION tm_append(
          p_stream text,
          p_expected bigint,
          p_events jsonb,
          p_recorded_at timestamptz,
          OUT current_version bigint,
          OUT first_position bigint
        ) LANGUAGE plpgsql AS $tm_append$
        DECLARE
          v_count integer := jsonb_array_length(p_events);
          v_xid xid8;
        BEGIN
          -- Appends to one stream take turns: a transaction-level advisory lock, held to commit.
          -- Unlike SELECT ... FOR UPDATE it takes no transaction id, and it also covers a stream
          -- that has no row yet.
          PERFORM pg_advisory_xact_lock(hashtextextended(p_stream, ${streamSeed}));
          SELECT s.version INTO current_version FROM ${q}.tm_streams s WHERE s.stream_id = p_stream;
          current_version := coalesce(current_version, 0);
          IF NOT (p_expected = ${EXPECT_ANY}
                  OR (p_expected = ${EXPECT_STREAM_EXISTS} AND current_version > 0)
                  OR p_expected = current_version) THEN
            RETURN;
          END IF;

          -- Gap safety rests on one invariant: transaction ids and positions are handed out in
          -- the same order (docs/postgres.md). So the id is taken here, with the positions,
          -- under a short lock; and a transaction that already has an id cannot append.
          IF pg_current_xact_id_if_assigned() IS NOT NULL THEN
            RAISE EXCEPTION 'tm_append must be the first write of its transaction'
              USING ERRCODE = 'TM001',
                    HINT = 'append in a transaction of its own, before any other write';
          END IF;
          BEGIN
            -- A session-level lock, released right after: a transaction-level one would be held
            -- until commit and make every append wait for the previous one's disk flush.
            PERFORM pg_advisory_lock(${classId}, ${objId});
            v_xid := pg_current_xact_id();
            -- "An append is in flight": held to commit, taken before the positions, so a
            -- running transaction without it has no positions yet (see tm_horizon).
            PERFORM pg_advisory_xact_lock(${appenders}, ${xidKey('v_xid')});
            first_position := nextval('${q}.tm_events_position_seq');
            IF v_count > 1 THEN
              -- Every caller of the sequence holds the lock, so the block is ours alone.
              PERFORM setval('${q}.tm_events_position_seq', first_position + v_count - 1);
            END IF;
            PERFORM pg_advisory_unlock(${classId}, ${objId});
          EXCEPTION WHEN query_canceled OR others THEN
            -- A session lock outlives the transaction: never leave it behind, whenever the
            -- error came (even between taking the lock and the next statement).
            IF EXISTS (SELECT 1 FROM pg_locks
                       WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND objsubid = 2
                         AND classid = (${classId})::oid AND objid = (${objId})::oid) THEN
              PERFORM pg_advisory_unlock(${classId}, ${objId});
            END IF;
            RAISE;
          END;

          INSERT INTO ${q}.tm_events (position, tx_id, stream_id, stream_version, event_id, type,
                                      schema_version, data, metadata, recorded_at)
          SELECT first_position + e.n - 1, v_xid, p_stream, current_version + e.n,
                 e.v ->> 'i', e.v ->> 't', (e.v ->> 's')::integer, e.v -> 'd', e.v -> 'm',
                 p_recorded_at
          FROM jsonb_array_elements(p_events) WITH ORDINALITY AS e (v, n);

          INSERT INTO ${q}.tm_streams (stream_id, version, position, updated_at)
          VALUES (p_stream, current_version + v_count, first_position + v_count - 1, p_recorded_at)
          ON CONFLICT (stream_id) DO UPDATE
            SET version = excluded.version, position = excluded.position,
                updated_at = excluded.updated_at;
        END
        $tm_append$;

        -- The horizon of the global log for a snapshot: the oldest transaction of the snapshot
        -- that is, or may have been, an append in flight; the snapshot's xmax if none. Rows of
        -- older transactions are settled: no append still running holds a lower position.
        -- Pass the reading statement's own snapshot (pg_current_snapshot()).
        CREATE FUNCTION tm_horizon(p_snapshot pg_snapshot) RETURNS xid8
        LANGUAGE plpgsql AS $tm_horizon$
        DECLARE
          v_xid xid8;
        BEGIN
          FOR v_xid IN SELECT x FROM pg_snapshot_xip(p_snapshot) AS t (x) ORDER BY x LOOP
            -- Marked: an append in flight. Unmarked and still running: not an append yet, so
            -- any positions it takes come after everything this snapshot sees. Unmarked and
            -- ended: it may have been an append that committed after the snapshot was taken
            -- (its rows are invisible here), so it counts.
            IF pg_try_advisory_lock_shared(${appenders}, ${xidKey('v_xid')}) THEN
              PERFORM pg_advisory_unlock_shared(${appenders}, ${xidKey('v_xid')});
              CONTINUE WHEN pg_xact_status(v_xid) = 'in progress';
            END IF;
            RETURN v_xid;
          END LOOP;
          RETURN pg_snapshot_xmax(p_snapshot);
        EXCEPTION WHEN query_canceled OR others THEN
          -- The probe is a session lock: never leave one behind.
          PERFORM pg_advisory_unlock_shared(${appenders},
                    (l.objid::bigint - CASE WHEN l.objid::bigint > 2147483647
                                            THEN 4294967296 ELSE 0 END)::integer)
          FROM pg_locks l
          WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid() AND l.objsubid = 2
            AND l.classid = (${appenders})::oid AND l.mode = 'ShareLock';
          RAISE;
        END
        $tm_horizon$;
      `,
    },
    {
      version: 3,
      description: 'the store identity (tm_store)',
      sql: `
        -- One row: the store's identity, a random UUID made once, here. A backup restored or a
        -- replica promoted keeps it; the Kafka relay records it and refuses progress made from
        -- another store.
        CREATE TABLE tm_store (
          singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
          store_id uuid NOT NULL,
          created_at timestamptz NOT NULL DEFAULT now()
        );
        INSERT INTO tm_store (store_id) VALUES (gen_random_uuid());
      `,
    },
    {
      version: 4,
      description: 'the archive index (tm_archive_segments, tm_archived_streams)',
      sql: `
        -- Segments of the archive (docs/retention.md). 'writing': begun, its file may be
        -- partial and its streams are still hot; 'sealed': its streams live there, not in
        -- tm_events. Positions are the sequence's: deleting rows never hands one out again.
        CREATE TABLE tm_archive_segments (
          segment_id text PRIMARY KEY,
          state text NOT NULL CHECK (state IN ('writing', 'sealed')),
          min_position bigint NOT NULL DEFAULT 0,
          max_position bigint NOT NULL DEFAULT 0,
          streams integer NOT NULL DEFAULT 0,
          events integer NOT NULL DEFAULT 0,
          created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE tm_archived_streams (
          stream_id text COLLATE "C" PRIMARY KEY,
          segment_id text NOT NULL REFERENCES ${q}.tm_archive_segments (segment_id),
          version bigint NOT NULL,
          archived_at timestamptz NOT NULL DEFAULT now()
        );
        -- An archived stream keeps its tm_streams row (its version answers expected-version
        -- checks and keeps its id taken) but takes no more events: tm_append updates that row,
        -- so this refuses the append inside its own transaction (the archiver holds the
        -- stream's advisory lock while it moves the stream, like an append).
        CREATE FUNCTION tm_refuse_archived() RETURNS trigger LANGUAGE plpgsql AS $tm_refuse$
        BEGIN
          IF EXISTS (SELECT 1 FROM ${q}.tm_archived_streams a WHERE a.stream_id = OLD.stream_id) THEN
            RAISE EXCEPTION 'stream % is archived', OLD.stream_id USING ERRCODE = 'TM002';
          END IF;
          RETURN NEW;
        END
        $tm_refuse$;
        CREATE TRIGGER tm_streams_archived BEFORE UPDATE ON tm_streams
          FOR EACH ROW EXECUTE FUNCTION tm_refuse_archived();
      `,
    },
  ];
}
