import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  BusinessRuleError,
  TidemarkError,
  WrongExpectedVersionError,
  errorClasses,
  isTidemarkError,
} from 'tidemark';

/** Builds an instance of each class with placeholder arguments: codes live on instances. */
function instances(): TidemarkError[] {
  return errorClasses.map((ErrorClass) => {
    const Ctor = ErrorClass as unknown as new (...args: unknown[]) => TidemarkError;
    return new Ctor('a', 'b', 'c', 'd');
  });
}

function documentedRows(): { code: string; className: string; retryable: boolean }[] {
  const text = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  return text
    .split('\n')
    .filter((line) => line.startsWith('| `'))
    .map((line) => {
      const cells = line.split('|').map((c) => c.trim());
      return {
        code: cells[1]!.replaceAll('`', ''),
        className: cells[2]!.replaceAll('`', ''),
        retryable: cells[3] === 'yes',
      };
    });
}

describe('errors', () => {
  it('every class has its own stable code, and reports its own name', () => {
    const all = instances();
    const codes = all.map((e) => e.code);
    assert.equal(new Set(codes).size, codes.length, `duplicate codes: ${codes.join(', ')}`);
    for (const [i, error] of all.entries()) {
      assert.match(error.code, /^[a-z]+(_[a-z]+)*$/);
      assert.equal(error.name, errorClasses[i]!.name);
      assert.ok(error instanceof TidemarkError);
      assert.ok(isTidemarkError(error, error.code as never));
      assert.equal(typeof error.retryable, 'boolean');
      assert.equal((error.toJSON() as { code: string }).code, error.code);
    }
  });

  it('docs/errors.md lists every code with its class and retryability, and nothing else', () => {
    const documented = documentedRows();
    const actual = instances().map((e) => ({
      code: e.code,
      className: e.name,
      retryable: e.retryable,
    }));
    const byCode = (a: { code: string }, b: { code: string }) => a.code.localeCompare(b.code);
    assert.deepEqual([...documented].sort(byCode), [...actual].sort(byCode));
  });

  it('turns into JSON with its typed fields, not its stack or cause', () => {
    const conflict = new WrongExpectedVersionError('s-1', 3, 4, { cause: new Error('x') });
    assert.deepEqual(JSON.parse(JSON.stringify(conflict)), {
      name: 'WrongExpectedVersionError',
      code: 'wrong_expected_version',
      message: "stream 's-1' is at version 4, expected 3",
      retryable: true,
      streamId: 's-1',
      expected: 3,
      actual: 4,
    });
    assert.deepEqual(Object.keys(new BusinessRuleError('no', 'refused').toJSON()), [
      'name',
      'code',
      'message',
      'retryable',
      'rule',
    ]);
  });

  it('keeps the cause', () => {
    const cause = new Error('root');
    const Ctor = errorClasses.find((c) => c.name === 'UnavailableError') as unknown as new (
      ...args: unknown[]
    ) => Error;
    const error = new Ctor('db', 'down', { cause });
    assert.equal(error.cause, cause);
  });
});
