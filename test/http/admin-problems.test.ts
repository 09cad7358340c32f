// The admin console's problem codes and docs/errors.md agree (as the error classes' do).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { ADMIN_PROBLEM_CODES } from 'tidemark/http';

it('docs/errors.md lists every problem code the console mints, with its status', () => {
  const text = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  const section = text.slice(text.indexOf('## Admin console'));
  const rows = section
    .split('\n')
    .filter((line) => /^\| \d{3} \| `/.test(line))
    .map((line) => {
      const cells = line.split('|').map((c) => c.trim());
      return [cells[2]!.replaceAll('`', ''), Number(cells[1])] as const;
    });
  assert.deepEqual(
    Object.fromEntries(rows.filter(([code]) => code in ADMIN_PROBLEM_CODES)),
    ADMIN_PROBLEM_CODES,
  );
  const shared = [
    'validation_failed',
    'malformed_json',
    'unsupported_media_type',
    'stream_not_found',
  ];
  assert.deepEqual(
    rows.map(([code]) => code).sort(),
    [...Object.keys(ADMIN_PROBLEM_CODES), ...shared].sort(),
  );
});
