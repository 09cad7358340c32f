/** `tidemark subjects forget`: crypto-shredding from the command line (docs/personal-data.md). */
import { ReadModels, forgetter, isTidemarkError } from '../../index.ts';
import {
  CliError,
  EXIT,
  arg,
  loadConfig,
  print,
  printJson,
  withStorage,
  type Command,
} from '../context.ts';

export function subjectCommands(usage: string): Record<string, Command> {
  return {
    'subjects forget': (ctx) =>
      withStorage(ctx, async (storage) => {
        const subject = arg(ctx, 2, 'subjectId', usage);
        const config = await loadConfig(ctx);
        try {
          const projections = config.projections ?? [];
          // The projectors run elsewhere: their progress is read from the ledger.
          const readModels = new ReadModels({ sink: storage.sink, projections });
          const result = await forgetter({ storage, readModels, projections })(subject);
          if (result.settled === false) {
            ctx.err(
              "tidemark: projections had not applied the subject's streams within 5 s; the read models were redacted anyway: run this again once they caught up\n",
            );
          }
          if (ctx.json) printJson(ctx, { ...result, alreadyForgotten: false });
          else
            print(
              ctx,
              `forgot subject '${subject}': its key is deleted; ${result.streamIds.length} stream(s) held its personal data; ${result.redacted.length} read-model version(s) redacted`,
            );
          return EXIT.ok;
        } catch (error) {
          if (isTidemarkError(error, 'unknown_subject')) {
            throw new CliError(`${error.message} (${error.code})`, EXIT.notFound);
          }
          if (!isTidemarkError(error, 'subject_forgotten')) throw error;
          // Forgetting is idempotent for scripts: the outcome is the one asked for.
          if (ctx.json) printJson(ctx, { subject, alreadyForgotten: true });
          else print(ctx, `${error.message} (${error.code})`);
          return EXIT.ok;
        }
      }),
  };
}
