/**
 * Runs the Orders service as a real process (what `npm start` runs) and waits on what it says:
 * the "listening" log line carries the address. No sleeps: every wait is on an event.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

const root = new URL('../../', import.meta.url).pathname;

/** The Node options of an npm script (`node <options> <entry> …`): what it runs the service with. */
function nodeOptionsOf(script: 'start' | 'start:dist'): string[] {
  const scripts = (
    JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as {
      scripts: Record<string, string>;
    }
  ).scripts;
  const words = scripts[script]!.split(/\s+/);
  return words.slice(1).filter((word) => word.startsWith('--max-'));
}

export interface ServiceProcess {
  child: ChildProcess;
  url: string;
  /** Resolves with the exit code (or the signal's name). */
  exited: Promise<number | string>;
  /** Log lines seen so far (parsed JSON). */
  logs: Record<string, unknown>[];
  /** Resolves with the first log line (seen or to come) that passes `test`. */
  waitForLog(test: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
}

export async function startServiceProcess(
  env: Record<string, string>,
  args: string[] = [],
  options: { compiled?: boolean } = {},
): Promise<ServiceProcess> {
  // compiled: the JavaScript of `npm run build` (dist/ and dist-examples/), as a production
  // deployment runs it; otherwise the TypeScript sources (Node strips the types), as `npm start`
  // does.
  // The heap settings of the npm scripts, so that what is measured is what they run.
  const entry = options.compiled
    ? [...nodeOptionsOf('start:dist'), 'dist-examples/orders/src/main.js']
    : // `npm start` passes --insecure-dev (open when no AUTH_* key is set): so do the sources.
      [
        ...nodeOptionsOf('start'),
        '--conditions=tidemark-source',
        'examples/orders/src/main.ts',
        '--insecure-dev',
      ];
  const child = spawn(process.execPath, [...entry, ...args], {
    cwd: root,
    env: {
      ...process.env,
      PORT: '0',
      LOG_LEVEL: 'info',
      // The compiled entry has no --insecure-dev default: open it explicitly unless keys are given.
      ...(options.compiled && !env.AUTH_SECRET && !env.AUTH_JWKS_URL
        ? { TIDEMARK_AUTH: 'off' }
        : {}),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  const watchers: {
    test: (line: Record<string, unknown>) => boolean;
    resolve: (line: Record<string, unknown>) => void;
  }[] = [];
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += String(chunk)));
  const exited = new Promise<number | string>((resolve) =>
    child.on('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
  );
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        for (const watcher of watchers.filter((w) => w.test(entry))) {
          watchers.splice(watchers.indexOf(watcher), 1);
          watcher.resolve(entry);
        }
        if (entry.msg === 'Tidemark Orders is listening') resolve(String(entry.address));
      } catch {
        // not a log line
      }
    });
    void exited.then((code) =>
      reject(new Error(`service exited (${code}) before listening: ${stderr}`)),
    );
  });
  const waitForLog = (test: (line: Record<string, unknown>) => boolean) =>
    new Promise<Record<string, unknown>>((resolve) => {
      const seen = logs.find(test);
      if (seen) resolve(seen);
      else watchers.push({ test, resolve });
    });
  return { child, url, exited, logs, waitForLog };
}
