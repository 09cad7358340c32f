/**
 * Wake-ups across processes: LISTEN on a connection of its own, NOTIFY after appends commit,
 * and a slow poll of the head as the fallback for whatever notifications cannot cover.
 *
 * Why NOTIFY is sent after the append's commit, from another statement, and not inside the
 * append: a transaction that notifies takes a database-wide lock at commit and keeps it until
 * its commit record is flushed, so notifying appends would commit one at a time, and the
 * server could no longer flush many commits with one disk write. Sent afterwards, one
 * notification covers every append that committed meanwhile, and it is committed without
 * waiting for the disk (`synchronous_commit = off`: it is a hint, not data).
 *
 * What notifications cannot cover: the process that appended dies between its commit and its
 * NOTIFY; a listener connection is down; an append that rolled back releases readers held
 * behind it (see readAll), and nothing announces that. The poll catches all three.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { Logger } from '../core/index.ts';
import { nextBackoff, quoteIdent } from './connection.ts';

export interface NotifierOptions {
  /** Settings of the listening connection (the pool's, without pool settings). */
  config: pg.ClientConfig;
  pool: pg.Pool;
  channel: string;
  logger: Logger;
  /** Send NOTIFY after local appends. */
  notify: boolean;
  /** During a burst of appends, at most one notification per this many ms. */
  notifyIntervalMs: number;
  /** How often to poll the head while someone listens, in ms. */
  pollIntervalMs: number;
  /** The readable head, for the poll. */
  head: () => Promise<number>;
  /** Called with the position an append reached. */
  wake: (position: number) => void;
}

export class AppendNotifier {
  readonly #options: NotifierOptions;
  /** Tells our own notifications apart from those of other processes. */
  readonly #token = randomUUID();
  readonly #notifyName: string;
  #listening = false;
  #closed = false;
  #client: pg.Client | undefined;
  /** Bumped by every listen() and unlisten(): a loop of an older generation ends. */
  #generation = 0;
  #loop: Promise<void> | undefined;
  #interrupt: (() => void) | undefined;
  #pollTimer: NodeJS.Timeout | undefined;
  #polling = false;
  #highest = 0;
  #pending = 0;
  #sent = 0;
  #sending = false;
  #sendTimer: NodeJS.Timeout | undefined;
  #lastSentAt = 0;

  constructor(options: NotifierOptions) {
    this.#options = options;
    this.#notifyName = `tm.notify.${options.channel}`;
  }

  /** True while the LISTEN connection is up. */
  get connected(): boolean {
    return this.#client !== undefined;
  }

  /** Notes a position announced or seen, so the poll wakes listeners only for newer ones. */
  seen(position: number): void {
    if (position > this.#highest) this.#highest = position;
  }

  /** Starts listening (LISTEN connection and poll), once. */
  listen(): void {
    if (this.#listening || this.#closed) return;
    this.#listening = true;
    // One listen loop at a time: a new one starts only after the one an unlisten() stopped has
    // closed its connection (otherwise a quick unlisten/listen would leave two, one leaking).
    const generation = ++this.#generation;
    const previous = this.#loop ?? Promise.resolve();
    this.#loop = previous.then(() => this.#listenLoop(generation));
    this.#pollTimer = setInterval(() => void this.#poll(), this.#options.pollIntervalMs);
    this.#pollTimer.unref();
  }

  /** Stops listening (no listener left). */
  async unlisten(): Promise<void> {
    if (this.#listening) {
      this.#listening = false;
      this.#generation++;
      if (this.#pollTimer) clearInterval(this.#pollTimer);
      this.#pollTimer = undefined;
      this.#interrupt?.();
    }
    // Even when an earlier unlisten() already stopped it: the caller (close() above all) must not
    // go on before the loop has closed its connection.
    const loop = this.#loop;
    if (!loop) return;
    await loop;
    if (this.#loop === loop) this.#loop = undefined;
  }

  /**
   * Tells other processes that the log reached `position`. Throttled: the first append after a
   * quiet spell is announced at once; during a burst, one notification every
   * `notifyIntervalMs` covers all the appends since the last one.
   */
  announce(position: number): void {
    this.seen(position);
    if (!this.#options.notify || this.#closed) return;
    if (position > this.#pending) this.#pending = position;
    this.#schedule();
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#sendTimer) clearTimeout(this.#sendTimer);
    this.#sendTimer = undefined;
    await this.unlisten();
    while (this.#sending) await new Promise<void>((resolve) => setImmediate(resolve));
  }

  #schedule(): void {
    if (this.#sending || this.#sendTimer || this.#closed || this.#pending <= this.#sent) return;
    const wait = this.#lastSentAt + this.#options.notifyIntervalMs - Date.now();
    if (wait <= 0) {
      void this.#send();
      return;
    }
    this.#sendTimer = setTimeout(() => {
      this.#sendTimer = undefined;
      void this.#send();
    }, wait);
    this.#sendTimer.unref();
  }

  async #send(): Promise<void> {
    this.#sending = true;
    const position = this.#pending;
    try {
      await this.#options.pool.query({
        name: this.#notifyName,
        text: `SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, $2)`,
        values: [this.#options.channel, `${position} ${this.#token}`],
      });
    } catch (error) {
      // A hint lost: listeners elsewhere find the events at their next poll.
      this.#options.logger.debug({ err: error }, 'append notification not sent');
    } finally {
      this.#sent = position;
      this.#lastSentAt = Date.now();
      this.#sending = false;
    }
    this.#schedule();
  }

  async #poll(): Promise<void> {
    if (this.#polling || !this.#listening) return;
    this.#polling = true;
    try {
      const head = await this.#options.head();
      if (head > this.#highest) {
        this.#highest = head;
        this.#options.wake(head);
      }
    } catch (error) {
      this.#options.logger.debug({ err: error }, 'head poll failed');
    } finally {
      this.#polling = false;
    }
  }

  /** Keeps one LISTEN connection open while listening, reconnecting with backoff. */
  async #listenLoop(generation: number): Promise<void> {
    const { config, channel, logger } = this.#options;
    let wait = 0;
    let first = true;
    const current = () => this.#listening && !this.#closed && this.#generation === generation;
    while (current()) {
      const client = new pg.Client(config);
      let failure: unknown;
      const ended = new Promise<void>((resolve) => {
        client.on('error', (error) => {
          failure = error;
          resolve();
        });
        client.on('end', () => resolve());
        this.#interrupt = resolve;
      });
      try {
        await client.connect();
        client.on('notification', (message) => {
          if (message.channel !== channel || !message.payload) return;
          const [position, token] = message.payload.split(' ');
          if (token === this.#token) return;
          const n = Number(position);
          if (!Number.isSafeInteger(n)) return;
          this.seen(n);
          this.#options.wake(n);
        });
        await client.query(`LISTEN ${quoteIdent(channel)}`);
        this.#client = client;
        logger.info({ channel, again: !first }, 'listening for appends');
        // After an outage: appends made while we were not listening were announced to nobody.
        if (!first) void this.#poll();
        first = false;
        wait = 0;
        await ended;
      } catch (error) {
        failure = error;
      }
      this.#client = undefined;
      this.#interrupt = undefined;
      await client.end().catch(() => {});
      if (!current()) break;
      // Loud once per outage; the attempts that follow are debug noise.
      if (wait === 0)
        logger.warn({ channel, err: failure }, 'append notifications lost; reconnecting');
      else logger.debug({ channel, err: failure }, 'still cannot listen for appends');
      wait = Math.min(nextBackoff(wait) * 2, 5000);
      const interrupted = new AbortController();
      this.#interrupt = () => interrupted.abort();
      // An interrupt (a stop) ends the wait early; that is not an error.
      await sleep(wait, undefined, { signal: interrupted.signal }).catch(() => {});
      this.#interrupt = undefined;
    }
  }
}
