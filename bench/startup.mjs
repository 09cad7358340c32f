#!/usr/bin/env node
// Start time and resident memory of the Orders service, however it is run:
//
//   node bench/startup.mjs [--runs 5] [--label text] -- <node and its arguments...>
//   node bench/startup.mjs -- node --conditions=tidemark-source examples/orders/src/main.ts
//   node bench/startup.mjs -- node dist-examples/orders/src/main.js
//
// Plain JavaScript, so that it runs on any Node the service is compared on (a loader, type
// stripping or compiled output). Each run starts the service in embedded mode on a SQLite file
// of its own and port 0, and measures
//   - start: from spawn until the service logs that it is listening (its own signal, no polling),
//   - RSS at ready: VmRSS of that process when it is listening,
//   - RSS after load: VmRSS after 500 orders were created and read back (the heap and JIT of a
//     process that did some work; peak, VmHWM, is reported too),
//   - the same two for the process tree (tsx transforms in an esbuild child process, which the
//     service's own VmRSS leaves out),
// then stops it with SIGTERM and waits for its exit. Prints one JSON line with the medians.
/* global fetch */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const argv = process.argv.slice(2);
const dash = argv.indexOf('--');
if (dash === -1 || dash === argv.length - 1) {
  process.stderr.write('usage: node bench/startup.mjs [--runs N] [--label text] -- <command...>\n');
  process.exit(2);
}
const options = argv.slice(0, dash);
const command = argv.slice(dash + 1);
const option = (name, fallback) => {
  const i = options.indexOf(name);
  return i === -1 ? fallback : options[i + 1];
};
const runs = Number(option('--runs', '5'));
const label = option('--label', command.join(' '));
const ORDERS = 500;

function status(pid) {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  return (field) => Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? 0) / 1024;
}

/** The process and its descendants: a loader may work in a child process (tsx runs esbuild). */
function tree(pid) {
  const pids = [pid];
  for (let i = 0; i < pids.length; i++) {
    for (const task of readdirSync(`/proc/${pids[i]}/task`)) {
      const children = readFileSync(`/proc/${pids[i]}/task/${task}/children`, 'utf8').trim();
      if (children) pids.push(...children.split(/\s+/).map(Number));
    }
  }
  return pids;
}

function memory(pid) {
  const own = status(pid);
  let treeMb = 0;
  for (const p of tree(pid)) treeMb += status(p)('VmRSS');
  return { rssMb: own('VmRSS'), hwmMb: own('VmHWM'), treeMb };
}

async function once() {
  const dir = mkdtempSync(join(tmpdir(), 'tidemark-startup-'));
  const [file, ...args] = command;
  const started = process.hrtime.bigint();
  const env = {
    ...process.env,
    PORT: '0',
    LOG_LEVEL: 'info',
    DATABASE_URL: join(dir, 'startup.db'),
    // Start time, not authentication, is measured: open, as for local development.
    TIDEMARK_AUTH: 'off',
  };
  delete env.KAFKA_BROKERS;
  const child = spawn(file === 'node' ? process.execPath : file, args, {
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  try {
    const address = await new Promise((resolve, reject) => {
      child.once('exit', (code) =>
        reject(new Error(`the service exited (${code}) before it listened`)),
      );
      createInterface({ input: child.stdout }).on('line', (line) => {
        try {
          const entry = JSON.parse(line);
          if (typeof entry.address === 'string' && /listening/.test(entry.msg ?? ''))
            resolve(entry.address);
        } catch {
          // not a log line
        }
      });
    });
    const startMs = Number(process.hrtime.bigint() - started) / 1e6;
    const ready = memory(child.pid);
    for (let i = 0; i < ORDERS; i++) {
      const created = await fetch(`${address}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          customerId: `c-${i % 20}`,
          lines: [{ sku: 'BOOK-1', quantity: 1, unitPriceCents: 1250 }],
        }),
      });
      if (created.status !== 201) throw new Error(`POST /orders answered ${created.status}`);
      const { orderId } = await created.json();
      const read = await fetch(`${address}/orders/${orderId}`);
      await read.arrayBuffer();
    }
    const loaded = memory(child.pid);
    return {
      startMs,
      readyRssMb: ready.rssMb,
      loadedRssMb: loaded.rssMb,
      peakRssMb: loaded.hwmMb,
      readyTreeRssMb: ready.treeMb,
      loadedTreeRssMb: loaded.treeMb,
    };
  } finally {
    child.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  }
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
};
const samples = [];
for (let i = 0; i < runs; i++) samples.push(await once());
const summary = { label, node: process.version, runs };
for (const key of [
  'startMs',
  'readyRssMb',
  'loadedRssMb',
  'peakRssMb',
  'readyTreeRssMb',
  'loadedTreeRssMb',
])
  summary[key] = Math.round(median(samples.map((s) => s[key])) * 10) / 10;
summary.startMsAll = samples.map((s) => Math.round(s.startMs));
process.stdout.write(`${JSON.stringify(summary)}\n`);
