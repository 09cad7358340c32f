/**
 * The problem codes the HTTP layer and the Orders service can answer with, against the table of
 * docs/orders-api.md: every code in the code is documented, and every documented code exists
 * (in the code, or as a Tidemark error code of docs/errors.md that the HTTP layer passes on).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';

const root = new URL('../../', import.meta.url).pathname;
const read = (path: string) => readFileSync(join(root, path), 'utf8');
const sources = (dir: string) =>
  readdirSync(join(root, dir))
    .filter((f) => f.endsWith('.ts'))
    .map((f) => read(join(dir, f)))
    .join('\n');

/** Codes given as literals: problem(400, 'code', …), HttpProblem(404, 'code', …), refuse('code'. */
function codesInCode(): Set<string> {
  const text = `${sources('src/http')}\n${sources('examples/orders/src')}`;
  const codes = new Set<string>();
  for (const match of text.matchAll(/\b(?:problem|HttpProblem)\(\s*[\w.]+,\s*'([a-z_]+)'/g))
    codes.add(match[1]!);
  for (const match of text.matchAll(/\brefuse\(\s*'([a-z_]+)'/g)) codes.add(match[1]!);
  return codes;
}

/** Codes in the status table of docs/orders-api.md. */
function documentedCodes(): Set<string> {
  const table = read('docs/orders-api.md').split('## Status codes and problem codes')[1]!;
  const codes = new Set<string>();
  for (const row of table.split('\n').filter((l) => /^\| [0-9x]{3} \|/.test(l))) {
    const cell = row.split('|')[2]!;
    for (const match of cell.matchAll(/`([a-z_]+)`/g)) codes.add(match[1]!);
  }
  return codes;
}

/** Tidemark error codes (docs/errors.md), which the HTTP layer answers with as they are. */
function errorCodes(): Set<string> {
  const codes = new Set<string>();
  for (const match of read('docs/errors.md').matchAll(/^\| `([a-z_]+)` \|/gm)) codes.add(match[1]!);
  return codes;
}

it('every problem code the HTTP layer and the Orders service use is in docs/orders-api.md', () => {
  const documented = documentedCodes();
  const missing = [...codesInCode()].filter((c) => !documented.has(c));
  assert.deepEqual(missing, []);
});

it('every code docs/orders-api.md lists exists in the code or among the Tidemark errors', () => {
  const used = codesInCode();
  const errors = errorCodes();
  const unknown = [...documentedCodes()].filter((c) => !used.has(c) && !errors.has(c));
  assert.deepEqual(unknown, []);
  // The scan finds the codes it should: a sample of each kind.
  for (const code of [
    'uri_too_long',
    'method_not_allowed',
    'invalid_correlation_id',
    'order_empty',
  ])
    assert.ok(used.has(code), code);
});
