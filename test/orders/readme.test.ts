/**
 * The README's quick start, run as written (only the port differs) against the service started
 * as a process, as a new user would.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, it } from 'node:test';
import { startServiceProcess } from '../support/process.ts';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'tidemark-readme-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function quickStartCommands(): string[] {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const section = readme.split('## Quick start')[1]!;
  const block = section.split('```bash\n')[1]!.split('```')[0]!;
  const commands: string[] = [];
  let current = '';
  for (const line of block.split('\n')) {
    if (line.trim() === '' || line.trim().startsWith('#')) continue;
    current += `${line.replace(/\\$/, '').trim()} `;
    if (!line.endsWith('\\')) {
      commands.push(current.trim());
      current = '';
    }
  }
  return commands;
}

it('every curl example of the README quick start works as written', async () => {
  const commands = quickStartCommands();
  assert.ok(commands.length >= 10 && commands.every((c) => c.startsWith('curl ')));
  const service = await startServiceProcess({ DATABASE_URL: join(dir, 'tidemark.db') });
  const expected = [201, 200, 200, 200, 200, 200, 409, 200, 200, 200, 200, 200, 200, 200, 200];
  const statuses: number[] = [];
  try {
    for (const command of commands) {
      const local = command.replaceAll('http://127.0.0.1:3000', service.url);
      const { stdout } = await run('bash', [
        '-c',
        local.replace(/^curl /, 'curl -s -o /dev/null -w "%{http_code}" '),
      ]);
      statuses.push(Number(stdout));
    }
  } finally {
    service.child.kill('SIGTERM');
    await service.exited;
  }
  assert.deepEqual(statuses, expected);
});

it('the short tour of the API runs as written and does what its comments say', async () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const tour = readme.split('## A short tour of the API')[1]!.split('```ts\n')[1]!.split('```')[0]!;
  // Inside the package, so that `tidemark` resolves to this checkout; run in a scratch folder,
  // where its ./data/bank.db lands.
  const file = new URL(`../../.readme-tour-${process.pid}.ts`, import.meta.url).pathname;
  writeFileSync(file, tour);
  const cwd = mkdtempSync(join(dir, 'tour-'));
  try {
    const { stdout } = await run(process.execPath, ['--conditions=tidemark-source', file], { cwd });
    assert.equal(stdout.trim(), '200 { version: 2 }');
  } finally {
    rmSync(file, { force: true });
  }
});
