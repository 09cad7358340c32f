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
// then stops it with SIGTERM and waits for its exit. Prints one JSON line with the medians.
/* global fetch */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
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

function memory(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field) => Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024 };
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
    return { startMs, readyRssMb: ready.rssMb, loadedRssMb: loaded.rssMb, peakRssMb: loaded.hwmMb };
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
for (const key of ['startMs', 'readyRssMb', 'loadedRssMb', 'peakRssMb'])
  summary[key] = Math.round(median(samples.map((s) => s[key])) * 10) / 10;
summary.startMsAll = samples.map((s) => Math.round(s.startMs));
process.stdout.write(`${JSON.stringify(summary)}\n`);
