/**
 * The Tidemark admin console: projections and their lag (live), the relay, rebuilds, parked
 * events with retry and skip, and a stream browser. Pages are addressed by the URL's hash
 * (#/projections, #/parked, #/streams, #/streams/<id>) so a link to a stream can be shared.
 */
import { render } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import {
  ApiProblem,
  api,
  enc,
  refreshMs,
  token,
  type Overview,
  type Parked,
  type RebuildJob,
  type RecordedEvent,
  type RelayView,
  type VersionStatus,
} from './api.ts';
import { LagChart, type Samples } from './chart.tsx';

/** Points kept per chart: ten minutes at the default two seconds. */
const KEPT = 300;

function useHash(): string {
  const [hash, setHash] = useState(location.hash || '#/projections');
  useEffect(() => {
    const on = () => setHash(location.hash || '#/projections');
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash;
}

/** Calls `load` now and every `refreshMs` while the page shows; a failure shows until the next success. */
function usePoll<T>(load: () => Promise<T>, deps: unknown[], every = refreshMs) {
  const [value, setValue] = useState<T | undefined>(undefined);
  const [error, setError] = useState<ApiProblem | Error | undefined>(undefined);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    let timer: number | undefined;
    const run = async () => {
      try {
        const next = await load();
        if (!live) return;
        setValue(next);
        setError(undefined);
      } catch (e) {
        if (live) setError(e as Error);
      }
      if (live && every > 0) timer = window.setTimeout(run, every);
    };
    void run();
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [...deps, tick]);
  return { value, error, reload: () => setTick((t) => t + 1) };
}

function Problem({ error }: { error: Error | undefined }) {
  if (!error) return null;
  const code = error instanceof ApiProblem ? error.code : 'network';
  return (
    <p class="problem" role="alert" data-code={code}>
      {error.message} <small>({code})</small>
    </p>
  );
}

function Head({ columns }: { columns: string[] }) {
  return (
    <thead>
      <tr>
        {columns.map((c, i) => (
          <th key={i}>{c}</th>
        ))}
      </tr>
    </thead>
  );
}

function Num({ value }: { value: number | null | undefined }) {
  return <>{value === null || value === undefined ? '–' : value.toLocaleString('en')}</>;
}

function TokenForm({ onSaved }: { onSaved: () => void }) {
  const [value, setValue] = useState(token.get());
  return (
    <form
      class="token"
      onSubmit={(e) => {
        e.preventDefault();
        token.set(value.trim());
        onSaved();
      }}
    >
      <label>
        Bearer token (operator role), kept for this tab only{' '}
        <input
          type="password"
          value={value}
          onInput={(e) => setValue((e.target as HTMLInputElement).value)}
          autocomplete="off"
        />
      </label>
      <button type="submit">Use token</button>
    </form>
  );
}

// ---------------------------------------------------------------------------------------------
// Projections: status, live lag, rebuilds, the relay

interface ProjectionsAnswer {
  time: string;
  projections: VersionStatus[];
  rebuilds: RebuildJob[];
}

function record(history: { events: Samples; seconds: Samples }, answer: ProjectionsAnswer) {
  const t = Date.parse(answer.time) / 1000;
  for (const [samples, pick] of [
    [history.events, (p: VersionStatus) => p.lagEvents],
    [history.seconds, (p: VersionStatus) => p.lagSeconds],
  ] as const) {
    samples.times.push(t);
    const seen = new Set<string>();
    for (const p of answer.projections) {
      if (p.state === 'retired') continue;
      const key = `${p.name} v${p.version}`;
      seen.add(key);
      let line = samples.series.get(key);
      if (!line) {
        line = new Array<number | null>(samples.times.length - 1).fill(null);
        samples.series.set(key, line);
      }
      line.push(pick(p));
    }
    for (const [key, line] of samples.series) if (!seen.has(key)) line.push(null);
    if (samples.times.length > KEPT) {
      samples.times.shift();
      for (const line of samples.series.values()) line.shift();
    }
    // A version gone for the whole window (dropped after a rebuild) leaves the chart.
    for (const [key, line] of samples.series)
      if (line.every((v) => v === null)) samples.series.delete(key);
  }
}

function ProjectionsPage({ overview }: { overview: Overview }) {
  const history = useRef({
    events: { times: [], series: new Map() } as Samples,
    seconds: { times: [], series: new Map() } as Samples,
  });
  const [message, setMessage] = useState<string | undefined>(undefined);
  const [actionError, setActionError] = useState<Error | undefined>(undefined);
  const { value, error, reload } = usePoll(async () => {
    const answer = await api<ProjectionsAnswer>('/projections');
    record(history.current, answer);
    return answer;
  }, []);

  const rebuild = async (name: string) => {
    setActionError(undefined);
    try {
      const { rebuild: job } = await api<{ rebuild: RebuildJob }>(
        `/projections/${enc(name)}/rebuild`,
        'POST',
      );
      setMessage(`rebuilding ${job.projection} as version ${job.version} from ${job.from}`);
      reload();
    } catch (e) {
      setActionError(e as Error);
    }
  };

  const rows = value?.projections ?? [];
  const names = [...new Set(rows.map((r) => r.name))];
  const running = new Set(
    (value?.rebuilds ?? [])
      .filter((j) => j.state === 'starting' || j.state === 'building' || j.state === 'switched')
      .map((j) => j.projection),
  );
  return (
    <section>
      <h2>Projections</h2>
      <p class="hint">
        Every physical version in the ledger, with its lag read from its own feed
        {overview.runsProjections ? '' : ' (this process runs no projections: it reads the ledger)'}
        . Refreshed every {refreshMs / 1000} s.
      </p>
      <Problem error={error} />
      <table data-testid="projections">
        <Head
          columns={[
            'projection',
            'version',
            'state',
            'feed',
            'here',
            'position',
            'lag (events)',
            'lag (s)',
            'parked',
            'gaps',
            'note',
          ]}
        />
        <tbody>
          {rows.map((p) => (
            <tr
              key={`${p.name}:${p.version}`}
              data-projection={p.name}
              data-version={p.version}
              data-state={p.state}
            >
              <td>{p.name}</td>
              <td>
                v{p.version}
                {p.deployedCodeVersion !== null && p.codeVersion !== p.deployedCodeVersion ? (
                  <small>
                    {' '}
                    (code {p.codeVersion}, deployed {p.deployedCodeVersion})
                  </small>
                ) : null}
              </td>
              <td>
                <span class={`badge ${p.state}`}>{p.state}</span>
              </td>
              <td>{p.feed}</td>
              <td>{p.running === null ? '–' : p.running ? 'runs' : 'not here'}</td>
              <td>
                <Position status={p} />
              </td>
              <td class="lag-events">
                <Num value={p.lagEvents} />
              </td>
              <td>
                <Num value={p.lagSeconds} />
              </td>
              <td class={p.parked > 0 ? 'warn' : ''}>
                {p.parked > 0 ? <a href={`#/parked?projection=${enc(p.name)}`}>{p.parked}</a> : 0}
              </td>
              <td class={p.gaps > 0 ? 'warn' : ''}>{p.gaps}</td>
              <td class="note">{p.lastError ?? p.note ?? ''}</td>
            </tr>
          ))}
        </tbody>
      </table>

      <div class="charts">
        <LagChart
          title="Lag in events"
          unit="events"
          samples={history.current.events}
          testId="chart-events"
        />
        <LagChart
          title="Lag in seconds"
          unit="seconds"
          samples={history.current.seconds}
          testId="chart-seconds"
        />
      </div>

      <h2>Rebuilds</h2>
      <p class="hint">
        A rebuild fills a new version beside the active one from the start of its feed; queries read
        the old one until the new one has caught up, then it switches over by itself and the old
        version is dropped after a grace period.
      </p>
      <div class="actions">
        {names.map((name) => (
          <button
            key={name}
            type="button"
            disabled={running.has(name)}
            data-testid={`rebuild-${name}`}
            onClick={() => {
              if (confirm(`Rebuild ${name} from the start of its feed?`)) void rebuild(name);
            }}
          >
            Rebuild {name}
          </button>
        ))}
      </div>
      {message ? (
        <p role="status" class="ok">
          {message}
        </p>
      ) : null}
      <Problem error={actionError} />
      <Rebuilds jobs={value?.rebuilds ?? []} />
      {overview.relay ? <Relay /> : null}
    </section>
  );
}

/** Store-fed: log position of head; Kafka-fed: stored offsets of partition ends, summed. */
function Position({ status }: { status: VersionStatus }) {
  if (status.partitions) {
    let offset = 0;
    let end = 0;
    for (const p of status.partitions) {
      offset += p.offset;
      end += p.end;
    }
    return (
      <span title={`offsets over ${status.partitions.length} partitions`}>
        <Num value={offset} />
        <small>
          {' '}
          / <Num value={end} /> offsets
        </small>
      </span>
    );
  }
  return (
    <>
      <Num value={status.position} />
      {status.head !== undefined ? (
        <small>
          {' '}
          / <Num value={status.head} />
        </small>
      ) : null}
    </>
  );
}

function Rebuilds({ jobs }: { jobs: RebuildJob[] }) {
  if (jobs.length === 0) return <p class="hint">No rebuild started from this process.</p>;
  return (
    <table data-testid="rebuilds">
      <Head
        columns={['projection', 'version', 'from', 'state', 'progress', 'started', 'dropped']}
      />
      <tbody>
        {jobs.map((j) => (
          <tr key={j.id} data-rebuild={j.id} data-state={j.state} data-version={j.version}>
            <td>{j.projection}</td>
            <td>v{j.version ?? '?'}</td>
            <td>{j.from ?? ''}</td>
            <td>
              <span class={`badge ${j.state}`}>{j.state}</span>
              {j.error ? <div class="note">{j.error}</div> : null}
            </td>
            <td>
              <progress max={Math.max(1, j.total)} value={j.done} />{' '}
              <small>
                <Num value={j.done} /> / <Num value={j.total} />
              </small>
            </td>
            <td>{new Date(j.startedAt).toLocaleTimeString('en-GB')}</td>
            <td>{j.dropped.map((v) => `v${v}`).join(', ')}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Relay() {
  const { value, error } = usePoll(() => api<RelayView>('/relay'), []);
  return (
    <>
      <h2>Relay</h2>
      <Problem error={error} />
      {value ? (
        <>
          <dl class="facts" data-testid="relay" data-state={value.state}>
            <dt>name</dt>
            <dd>{value.name}</dd>
            <dt>state</dt>
            <dd>
              <span class={`badge ${value.state}`}>{value.state}</span>
              {value.source === 'progress' ? (
                <small> (runs elsewhere; from its committed progress: {value.storeCheck})</small>
              ) : null}
            </dd>
            <dt>published position</dt>
            <dd>
              <Num value={value.position} />
            </dd>
            <dt>store head</dt>
            <dd>
              <Num value={value.head} />
            </dd>
            <dt>backlog</dt>
            <dd class="relay-backlog">
              <Num value={value.backlog} />
            </dd>
            {value.pastHead > 0 ? (
              <>
                <dt>past the head</dt>
                <dd class="warn">{value.pastHead}</dd>
              </>
            ) : null}
            {value.eventsPerSecond !== undefined ? (
              <>
                <dt>events/s</dt>
                <dd>{value.eventsPerSecond}</dd>
              </>
            ) : null}
            {value.refusal || value.lastError ? (
              <>
                <dt>why</dt>
                <dd class="note">{value.refusal?.message ?? value.lastError}</dd>
              </>
            ) : null}
          </dl>
          {value.parked.length > 0 ? (
            <>
              <h3>Streams the relay holds back (an event too big to publish)</h3>
              <table>
                <Head columns={['stream', 'version', 'position', 'type', 'bytes', 'limit']} />
                <tbody>
                  {value.parked.map((p) => (
                    <tr key={p.streamId}>
                      <td>
                        <a href={`#/streams/${enc(p.streamId)}`}>{p.streamId}</a>
                      </td>
                      <td>{p.streamVersion}</td>
                      <td>{p.position}</td>
                      <td>{p.type}</td>
                      <td>{p.bytes}</td>
                      <td>{p.limit}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
              <p class="hint">
                Raise the limit, then <code>tidemark relay retry --stream ID</code> (it fences the
                running relay, so it is not offered here).
              </p>
            </>
          ) : null}
        </>
      ) : null}
    </>
  );
}

// ---------------------------------------------------------------------------------------------
// Dead letters

function ParkedPage({ overview, query }: { overview: Overview; query: URLSearchParams }) {
  const projection = query.get('projection') ?? '';
  const [message, setMessage] = useState<string | undefined>(undefined);
  const [actionError, setActionError] = useState<Error | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const { value, error, reload } = usePoll(
    () => api<{ parked: Parked[] }>(`/parked${projection ? `?projection=${enc(projection)}` : ''}`),
    [projection],
  );
  const act = async (path: string, done: (answer: Record<string, unknown>) => string) => {
    setBusy(true);
    setActionError(undefined);
    setMessage(undefined);
    try {
      setMessage(done(await api<Record<string, unknown>>(path, 'POST')));
    } catch (e) {
      setActionError(e as Error);
    } finally {
      setBusy(false);
      reload();
    }
  };

  const groups = new Map<string, Parked[]>();
  for (const p of value?.parked ?? []) {
    const key = `${p.projection}\n${p.version}\n${p.event.streamId}`;
    groups.set(key, [...(groups.get(key) ?? []), p]);
  }
  return (
    <section>
      <h2>Dead letters</h2>
      <p class="hint">
        A handler that keeps failing parks its event, and the later events of the same stream park
        behind it. Fix the handler and deploy it, then retry the stream; skip an event that must
        never be applied, then retry the rest.
      </p>
      <label>
        Projection{' '}
        <select
          value={projection}
          onChange={(e) => {
            const v = (e.target as HTMLSelectElement).value;
            location.hash = v ? `#/parked?projection=${enc(v)}` : '#/parked';
          }}
        >
          <option value="">all</option>
          {overview.projections.map((p) => (
            <option key={p.name} value={p.name}>
              {p.name}
            </option>
          ))}
        </select>
      </label>
      <Problem error={error} />
      {message ? (
        <p role="status" class="ok">
          {message}
        </p>
      ) : null}
      <Problem error={actionError} />
      {value && groups.size === 0 ? <p data-testid="no-parked">Nothing is parked.</p> : null}
      {[...groups.values()].map((events) => {
        const first = events[0]!;
        const stream = first.event.streamId;
        return (
          <article
            class="parked"
            key={`${first.projection}:${first.version}:${stream}`}
            data-testid="parked-stream"
            data-projection={first.projection}
            data-stream={stream}
          >
            <header>
              <strong>
                <a href={`#/streams/${enc(stream)}`}>{stream}</a>
              </strong>{' '}
              in {first.projection} v{first.version}: {events.length} parked
              <button
                type="button"
                disabled={busy}
                data-testid="retry"
                onClick={() =>
                  void act(
                    `/projections/${enc(first.projection)}/parked/${enc(stream)}/retry`,
                    (a) => `applied ${String(a.applied)} parked event(s) of ${stream}`,
                  )
                }
              >
                Retry stream
              </button>
            </header>
            <table>
              <Head columns={['version', 'type', 'reason', 'attempts', 'error', 'parked', '']} />
              <tbody>
                {events.map((p) => (
                  <tr key={p.event.eventId} data-event={p.event.eventId}>
                    <td>{p.event.streamVersion}</td>
                    <td>{p.event.type}</td>
                    <td>
                      <span class={`badge ${p.reason}`}>{p.reason}</span>
                    </td>
                    <td>{p.attempts}</td>
                    <td class="note error-text">{p.error}</td>
                    <td>{new Date(p.parkedAt).toLocaleString('en-GB')}</td>
                    <td>
                      <button
                        type="button"
                        disabled={busy}
                        data-testid="skip"
                        onClick={() => {
                          if (!confirm(`Skip ${p.event.type} ${p.event.eventId} for good?`)) return;
                          void act(
                            `/projections/${enc(p.projection)}/parked-events/${enc(p.event.eventId)}/skip`,
                            () => `skipped ${p.event.eventId}; retry ${stream} to apply the rest`,
                          );
                        }}
                      >
                        Skip
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </article>
        );
      })}
    </section>
  );
}

// ---------------------------------------------------------------------------------------------
// Streams

function StreamsPage({ query }: { query: URLSearchParams }) {
  const prefix = query.get('prefix') ?? '';
  const [text, setText] = useState(prefix);
  const { value, error } = usePoll(
    async () => ({
      // The answer says which search it answers: the table shows it (a page signal for tests).
      prefix,
      ...(await api<{
        streams: { streamId: string; version: number; position: number; updatedAt: string }[];
      }>(`/streams?limit=100${prefix ? `&prefix=${enc(prefix)}` : ''}`)),
    }),
    [prefix],
    0,
  );
  return (
    <section>
      <h2>Streams</h2>
      <form
        class="search"
        onSubmit={(e) => {
          e.preventDefault();
          location.hash = `#/streams?prefix=${enc(text)}`;
        }}
      >
        <input
          name="prefix"
          placeholder="stream id starts with…"
          value={text}
          onInput={(e) => setText((e.target as HTMLInputElement).value)}
        />
        <button type="submit">Search</button>
      </form>
      <Problem error={error} />
      <table data-testid="streams" data-prefix={value?.prefix}>
        <Head columns={['stream', 'version', 'last position', 'updated']} />
        <tbody>
          {(value?.streams ?? []).map((s) => (
            <tr key={s.streamId} data-stream={s.streamId}>
              <td>
                <a href={`#/streams/${enc(s.streamId)}`}>{s.streamId}</a>
              </td>
              <td>{s.version}</td>
              <td>{s.position}</td>
              <td>{new Date(s.updatedAt).toLocaleString('en-GB')}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {value && value.streams.length === 0 ? <p>No stream matches.</p> : null}
    </section>
  );
}

function StreamPage({ streamId }: { streamId: string }) {
  const { value, error } = usePoll(
    () =>
      api<{ version: number; events: RecordedEvent[]; stateAvailable: boolean }>(
        `/streams/${enc(streamId)}/events?limit=1000`,
      ),
    [streamId],
    0,
  );
  const [at, setAt] = useState<number | undefined>(undefined);
  const [state, setState] = useState<{ version: number; state: unknown } | undefined>(undefined);
  const [stateError, setStateError] = useState<Error | undefined>(undefined);
  const show = useCallback(
    async (version: number) => {
      setStateError(undefined);
      try {
        setState(await api(`/streams/${enc(streamId)}/state?version=${version}`));
      } catch (e) {
        setStateError(e as Error);
      }
    },
    [streamId],
  );
  useEffect(() => {
    if (value && value.stateAvailable && at === undefined) {
      setAt(value.version);
      void show(value.version);
    }
  }, [value]);
  return (
    <section>
      <h2>
        Stream <code data-testid="stream-id">{streamId}</code>
      </h2>
      <p>
        <a href="#/streams">all streams</a>
      </p>
      <Problem error={error} />
      {value ? (
        <div class="stream">
          <div class="events">
            <table data-testid="events">
              <Head
                columns={['version', 'position', 'type', 'schema', 'recorded', 'data and metadata']}
              />
              <tbody>
                {value.events.map((e) => (
                  <tr
                    key={e.eventId}
                    data-version={e.streamVersion}
                    class={at === e.streamVersion ? 'selected' : ''}
                    onClick={() => {
                      if (!value.stateAvailable) return;
                      setAt(e.streamVersion);
                      void show(e.streamVersion);
                    }}
                  >
                    <td>{e.streamVersion}</td>
                    <td>{e.position}</td>
                    <td>{e.type}</td>
                    <td>{e.schemaVersion}</td>
                    <td>{new Date(e.recordedAt).toLocaleString('en-GB')}</td>
                    <td>
                      <details>
                        <summary>
                          <code>{JSON.stringify(e.data).slice(0, 80)}</code>
                        </summary>
                        <pre>
                          {JSON.stringify(
                            { eventId: e.eventId, data: e.data, metadata: e.metadata },
                            null,
                            2,
                          )}
                        </pre>
                      </details>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <aside class="state">
            <h3>State at version</h3>
            {value.stateAvailable ? (
              <>
                <form
                  onSubmit={(e) => {
                    e.preventDefault();
                    if (at !== undefined) void show(at);
                  }}
                >
                  <input
                    type="number"
                    name="version"
                    min={1}
                    max={value.version}
                    value={at ?? ''}
                    onInput={(e) => setAt(Number((e.target as HTMLInputElement).value))}
                  />
                  <button type="submit">Fold</button>
                </form>
                <Problem error={stateError} />
                {state ? (
                  <pre data-testid="state" data-version={state.version}>
                    {JSON.stringify(state.state, null, 2)}
                  </pre>
                ) : null}
              </>
            ) : (
              <p class="hint">No decider is registered for this kind of stream.</p>
            )}
          </aside>
        </div>
      ) : null}
    </section>
  );
}

// ---------------------------------------------------------------------------------------------

function App() {
  const hash = useHash();
  const [attempt, setAttempt] = useState(0);
  const { value: overview, error } = usePoll(() => api<Overview>('/overview'), [attempt], 0);
  const [path = '', search = ''] = hash.slice(1).split('?');
  const query = new URLSearchParams(search);
  const needsToken = error instanceof ApiProblem && (error.status === 401 || error.status === 403);
  const page = path.startsWith('/streams/')
    ? 'stream'
    : path === '/parked'
      ? 'parked'
      : path === '/streams'
        ? 'streams'
        : 'projections';
  return (
    <>
      <header class="top">
        <h1>Tidemark admin</h1>
        <nav>
          <a href="#/projections" aria-current={page === 'projections' ? 'page' : undefined}>
            Projections
          </a>
          <a href="#/parked" aria-current={page === 'parked' ? 'page' : undefined}>
            Dead letters
          </a>
          <a
            href="#/streams"
            aria-current={page === 'streams' || page === 'stream' ? 'page' : undefined}
          >
            Streams
          </a>
        </nav>
        {overview ? (
          <span class="meta" data-testid="head">
            head {overview.head.toLocaleString('en')} · feeds {overview.feeds.join(', ')}
          </span>
        ) : null}
      </header>
      <main>
        {needsToken ? <TokenForm onSaved={() => setAttempt((a) => a + 1)} /> : null}
        <Problem error={error} />
        {overview ? (
          page === 'parked' ? (
            <ParkedPage overview={overview} query={query} />
          ) : page === 'streams' ? (
            <StreamsPage query={query} />
          ) : page === 'stream' ? (
            <StreamPage streamId={decodeURIComponent(path.slice('/streams/'.length))} />
          ) : (
            <ProjectionsPage overview={overview} />
          )
        ) : null}
      </main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
