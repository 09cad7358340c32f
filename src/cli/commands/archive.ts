/**
 * `tidemark streams archive`: moves old streams out of the hot tables into the archive, with
 * progress, stoppable (SIGINT, SIGTERM) and resumable. The work is the library's
 * `archiveStreams`; this only reads options, shows progress and handles signals.
 */
import { archiveStreams, parseAge, type ArchiveProgress } from '../../index.ts';
import {
  CliError,
  EXIT,
  archiveDirectoryOf,
  intOption,
  loadConfig,
  print,
  printJson,
  withStorage,
  type Command,
  type Context,
} from '../context.ts';

function line(p: ArchiveProgress): string {
  const verb = p.dryRun ? 'would archive' : 'archived';
  const kib = p.dryRun ? '' : `, ${(p.bytes / 1024).toFixed(1)} KiB`;
  return `${verb} ${p.streams} streams (${p.events} events) in ${p.segments} segments${kib}; looked at ${p.scanned}`;
}

export function archiveCommands(usage: string): Record<string, Command> {
  return {
    'streams archive': (ctx) => archive(ctx, usage),
  };
}

async function archive(ctx: Context, usage: string): Promise<number> {
  const olderThan = ctx.options['older-than'];
  if (typeof olderThan !== 'string') {
    throw new CliError(`streams archive needs --older-than AGE (e.g. 90d)\n\n${usage}`, EXIT.usage);
  }
  const olderThanMs = parseAge(olderThan);
  const config = await loadConfig(ctx);
  if (archiveDirectoryOf(ctx, config) === undefined) {
    throw new CliError(
      'streams archive needs an archive directory: --archive DIR, TIDEMARK_ARCHIVE_DIR, or archive.directory in the config',
      EXIT.usage,
    );
  }
  const prefix = (ctx.options.prefix as string | undefined) ?? config.archive?.prefix;
  const dryRun = ctx.options['dry-run'] === true;
  const streamsPerSegment = intOption(ctx, 'segment-streams', 1000)!;
  // Stop after the segment in progress: nothing is left half done, and a rerun resumes.
  const stop = new AbortController();
  const onSignal = () => {
    if (!stop.signal.aborted) ctx.err('stopping after the segment in progress…\n');
    stop.abort();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    return await withStorage(ctx, async (storage) => {
      if (!storage.archive) {
        throw new CliError(`the ${storage.kind} store has no archive index`, EXIT.failed);
      }
      const started = performance.now();
      const progress = await archiveStreams({
        tables: storage.archive.tables,
        segments: storage.archive.segments,
        olderThanMs,
        ...(config.archive?.policy ? { policy: config.archive.policy } : {}),
        ...(prefix ? { prefix } : {}),
        streamsPerSegment,
        dryRun,
        signal: stop.signal,
        onProgress: (p) => {
          if (!ctx.json && !p.done) ctx.err(`${line(p)}\n`);
        },
      });
      const seconds = (performance.now() - started) / 1000;
      if (ctx.json) printJson(ctx, { ...progress, seconds });
      else {
        if (progress.recovered > 0) {
          print(ctx, `dropped ${progress.recovered} segment(s) a stopped run left unsealed`);
        }
        print(ctx, `${line(progress)} in ${seconds.toFixed(1)} s`);
        if (progress.stopped) print(ctx, 'stopped; run the same command again to go on');
      }
      return EXIT.ok;
    });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
