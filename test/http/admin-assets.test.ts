// The console's page assets are committed (so `npm start` and an installed package serve them
// without a bundler): they must be what a fresh build of admin-ui/ gives.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';

const root = new URL('../../', import.meta.url);
const asset = (name: string) =>
  readFileSync(new URL(`src/http/admin/assets/${name}`, root), 'utf8');

it('the committed admin assets are a fresh build of admin-ui/ (node scripts/admin-assets.mjs)', () => {
  const check = spawnSync(process.execPath, ['scripts/admin-assets.mjs', '--check'], {
    cwd: root,
    encoding: 'utf8',
  });
  assert.equal(check.status, 0, check.stderr);
  // Nothing is fetched from elsewhere at run time: no absolute URL that a browser would load.
  assert.doesNotMatch(asset('console.css'), /url\(\s*['"]?(https?:)?\/\//);
  assert.doesNotMatch(asset('console.js'), /import\s*\(?\s*['"](https?:)?\/\//);
});
