// Loaded into every test file's process (scripts/test.mjs passes it with --import). Once a file's
// tests and hooks are done, its process should exit by itself; one that does not is held by
// something a test (or the code under test) left open: a socket, a timer, a child process.
// Without this watch such a file ran into the file timeout (10 minutes) and said nothing about
// why. With it, the process fails after EXIT_GRACE_MS and names what is still open.
import { createHook } from 'node:async_hooks';
import { after } from 'node:test';

const EXIT_GRACE_MS = Number(process.env.TIDEMARK_TEST_EXIT_GRACE_MS ?? 30_000);

// Timers are not among the handles Node lists, so the report can only count them. With
// TIDEMARK_TEST_TRACE_TIMERS=1 every timer's creation stack is kept (a cost too high to pay
// always) and the report shows where each timer still holding the process was set.
const timerStacks = new Map<object, string>();
if (process.env.TIDEMARK_TEST_TRACE_TIMERS === '1') {
  const byId = new Map<number, object>();
  createHook({
    init(asyncId, type, _trigger, resource) {
      if (type !== 'Timeout') return;
      byId.set(asyncId, resource);
      timerStacks.set(resource, new Error().stack?.split('\n').slice(1, 16).join('\n') ?? '');
    },
    destroy(asyncId) {
      const resource = byId.get(asyncId);
      byId.delete(asyncId);
      if (resource) timerStacks.delete(resource);
    },
  }).enable();
}

/** One line per handle that keeps the event loop alive, with what can be told about it. */
export function describeOpenHandles(): string[] {
  // _getActiveHandles is undocumented but has been there since early Node; the documented
  // getActiveResourcesInfo names only the kinds. Both are read, so a rename cannot hide a leak.
  const getHandles = (process as unknown as { _getActiveHandles?: () => unknown[] })
    ._getActiveHandles;
  const handles = typeof getHandles === 'function' ? getHandles.call(process) : [];
  const lines: string[] = [];
  const std: unknown[] = [process.stdout, process.stderr];
  for (const handle of handles) {
    if (std.includes(handle)) continue;
    const h = handle as Record<string, unknown> & { constructor?: { name?: string } };
    if (typeof h.hasRef === 'function' && !(h.hasRef as () => boolean).call(h)) continue;
    const kind = h.constructor?.name ?? typeof h;
    if (kind === 'Socket' || kind === 'TLSSocket') {
      lines.push(
        `${kind} ${String(h.localAddress)}:${String(h.localPort)} -> ${String(h.remoteAddress)}:${String(h.remotePort)}${h.destroyed ? ' (destroyed)' : ''}`,
      );
    } else if (kind === 'Server') {
      const address = (h.address as () => unknown)?.call(h);
      lines.push(`Server ${JSON.stringify(address)}`);
    } else if (kind === 'ChildProcess') {
      lines.push(`ChildProcess pid ${String(h.pid)}: ${JSON.stringify(h.spawnargs)}`);
    } else {
      lines.push(kind);
    }
  }
  for (const [timer, stack] of timerStacks) {
    const t = timer as { hasRef?: () => boolean; _destroyed?: boolean; _idleTimeout?: number };
    if (t._destroyed || t.hasRef?.() === false) continue;
    lines.push(`Timeout ${String(t._idleTimeout)} ms, set at:\n${stack}`);
  }
  lines.push(`resources: ${process.getActiveResourcesInfo().join(', ')}`);
  return lines;
}

// A bound, not a wait: no test waits on this timer, and it is unref'd, so a process that exits
// (the normal case) never sees it fire. "Still alive" has no event to wait on: the only signal
// is the exit itself, and the failure it guards against is that the exit never comes. Like the
// runner's own test timeout, it turns a hang into a failure with its cause named.
after(() => {
  const timer = setTimeout(() => {
    process.stderr.write(
      `[exit-watch] the file's tests are done, yet its process has not exited ${EXIT_GRACE_MS / 1000} s later; what holds it open:\n` +
        describeOpenHandles()
          .map((line) => `  ${line}\n`)
          .join(''),
    );
    process.exit(1);
  }, EXIT_GRACE_MS);
  timer.unref();
});
