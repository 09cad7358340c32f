#!/usr/bin/env node
// Makes sure kcat (the librdkafka command-line client) is installed, and prints its path.
// Used by the interoperability test (test/kafka/kcat.test.ts): a Kafka client nobody here wrote
// reads what the relay published. On Debian as root it is installed from the distribution
// (`apt-get install kcat`); elsewhere it must already be on PATH (or in TIDEMARK_KCAT).
//   node scripts/kcat.mjs        → /usr/bin/kcat
import { aptInstall, log, which, withLock } from './services/lib.mjs';

export async function ensureKcat() {
  const given = process.env.TIDEMARK_KCAT;
  if (given) return given;
  const found = which('kcat') ?? which('kafkacat');
  if (found) return found;
  return withLock('apt', async () => {
    const again = which('kcat');
    if (again) return again;
    log('kcat', 'kcat not found; installing it from the distribution');
    await aptInstall('kcat', ['kcat']);
    const installed = which('kcat');
    if (!installed) throw new Error('kcat: installed, but not found on PATH');
    return installed;
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    process.stdout.write(`${await ensureKcat()}\n`);
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
}
