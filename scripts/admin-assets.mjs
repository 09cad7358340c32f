#!/usr/bin/env node
// The admin console's page assets (src/http/admin/assets/console.js and console.css), bundled
// from admin-ui/ by esbuild: Preact, uPlot and the console's own code in one script, uPlot's
// styles and the console's in one sheet. The output is committed, so `npm start` and the tests
// serve it without a build step, and a user's install needs no bundler.
//
//   node scripts/admin-assets.mjs           rebuild the committed assets
//   node scripts/admin-assets.mjs --check   exit 1 when they differ from a fresh build
//   node scripts/admin-assets.mjs --copy D  copy them into D (npm run build: dist/http/admin/assets)
import { Buffer } from 'node:buffer';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = new URL('..', import.meta.url).pathname;
const assets = join(root, 'src/http/admin/assets');
const argv = process.argv.slice(2);

if (argv[0] === '--copy') {
  const target = join(root, argv[1] ?? 'dist/http/admin/assets');
  mkdirSync(target, { recursive: true });
  cpSync(assets, target, { recursive: true });
  process.exit(0);
}

/** Builds both files in memory: `{ 'console.js': text, 'console.css': text }`. */
export async function bundle() {
  const esbuild = await import('esbuild');
  const common = {
    bundle: true,
    minify: true,
    write: false,
    legalComments: 'eof',
    logLevel: 'silent',
    absWorkingDir: root,
  };
  const [script, styles] = await Promise.all([
    esbuild.build({
      ...common,
      entryPoints: ['admin-ui/main.tsx'],
      format: 'esm',
      target: 'es2022',
      jsx: 'automatic',
      jsxImportSource: 'preact',
      outfile: 'console.js',
    }),
    esbuild.build({
      ...common,
      stdin: {
        contents: '@import "uplot/dist/uPlot.min.css";\n@import "./admin-ui/style.css";\n',
        resolveDir: root,
        loader: 'css',
      },
      loader: { '.css': 'css' },
      outfile: 'console.css',
    }),
  ]);
  return {
    'console.js': script.outputFiles[0].text,
    'console.css': styles.outputFiles[0].text,
  };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const built = await bundle();
  if (argv[0] === '--check') {
    const stale = Object.entries(built).filter(
      ([name, text]) => readFileSync(join(assets, name), 'utf8') !== text,
    );
    if (stale.length > 0) {
      console.error(
        `stale admin assets: ${stale.map(([n]) => n).join(', ')}; run node scripts/admin-assets.mjs`,
      );
      process.exit(1);
    }
  } else {
    mkdirSync(assets, { recursive: true });
    for (const [name, text] of Object.entries(built)) writeFileSync(join(assets, name), text);
    for (const [name, text] of Object.entries(built))
      console.log(`${name}: ${(Buffer.byteLength(text) / 1024).toFixed(1)} KiB`);
  }
}
