/**
 * The monitoring files users import (ops/prometheus, ops/grafana) are checked the way Prometheus
 * and Grafana would read them: promtool parses the rules and runs their unit tests, every
 * dashboard query parses as PromQL, and both name only metrics that docs/operations.md documents.
 * promtool is built from Go modules by scripts/promtool.mjs (once, into the cache).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
// @ts-expect-error: a plain JavaScript script without declarations
import { ensurePromtool } from '../../scripts/promtool.mjs';

const root = new URL('../../', import.meta.url).pathname;
const read = (path: string) => readFileSync(join(root, path), 'utf8');

interface Target {
  refId: string;
  expr: string;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: { uid: string };
  targets?: Target[];
}

const dashboard = JSON.parse(read('ops/grafana/tidemark-dashboard.json')) as {
  uid: string;
  panels: Panel[];
  templating: { list: { name: string }[] };
};
const rulesText = read('ops/prometheus/tidemark.rules.yml');

/** Metric names in docs/operations.md's metric tables (rows that start with a metric name). */
function documentedMetrics(): Set<string> {
  return new Set(
    read('docs/operations.md')
      .split('\n')
      .map((line) => /^\| `(tidemark_[a-z_]+)` \|/.exec(line)?.[1])
      .filter((name): name is string => name !== undefined),
  );
}

/** tidemark_* names in a PromQL text, a histogram's _bucket/_sum/_count series as the histogram. */
function metricsIn(text: string): Set<string> {
  return new Set(
    [...text.matchAll(/\btidemark_[a-z_]+/g)].map((m) =>
      m[0].replace(/_seconds_(bucket|sum|count)$/, '_seconds'),
    ),
  );
}

const queries = dashboard.panels.flatMap((panel) =>
  (panel.targets ?? []).map((target) => ({ panel, target })),
);

function runPromtool(binary: string, args: string[]) {
  const run = spawnSync(binary, args, { cwd: root, encoding: 'utf8' });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

describe('monitoring files (ops/)', () => {
  let promtool: string;
  let scratch: string;
  before(() => {
    promtool = ensurePromtool({ quiet: true }) as string;
    scratch = mkdtempSync(join(tmpdir(), 'tidemark-promtool-'));
  });
  after(() => rmSync(scratch, { recursive: true, force: true }));

  it('promtool accepts the alert rules', () => {
    const run = runPromtool(promtool, ['check', 'rules', 'ops/prometheus/tidemark.rules.yml']);
    assert.equal(run.status, 0, run.output);
    assert.match(run.output, /SUCCESS: 10 rules found/);
  });

  it("the rules' unit tests pass: each alert fires on its series and not before its time", () => {
    const run = runPromtool(promtool, ['test', 'rules', 'ops/prometheus/tidemark.rules.test.yml']);
    assert.equal(run.status, 0, run.output);
    assert.match(run.output, /SUCCESS/);
  });

  it('every alert has a unit test', () => {
    const alerts = [...rulesText.matchAll(/- alert: (\w+)/g)].map((m) => m[1]!);
    const tested = new Set(
      [...read('ops/prometheus/tidemark.rules.test.yml').matchAll(/alertname: (\w+)/g)].map(
        (m) => m[1]!,
      ),
    );
    assert.deepEqual(
      alerts.filter((a) => !tested.has(a)),
      [],
    );
  });

  it('every dashboard query is valid PromQL (promtool parses each as a recording rule)', () => {
    assert.ok(queries.length >= 15, `only ${queries.length} queries`);
    // Grafana's variables replaced by what they stand for, so promtool parses the query as
    // Prometheus would receive it.
    const lines = ['groups:', '  - name: dashboard', '    rules:'];
    for (const { panel, target } of queries) {
      const expr = target.expr
        .replaceAll('$__rate_interval', '2m')
        .replaceAll('$job', '.*')
        .replaceAll('$instance', '.*');
      lines.push(
        `      - record: dashboard:panel_${panel.id}_${target.refId}`,
        `        expr: ${JSON.stringify(expr)}`,
      );
    }
    const file = join(scratch, 'dashboard-queries.yml');
    writeFileSync(file, lines.join('\n') + '\n');
    const run = runPromtool(promtool, ['check', 'rules', file]);
    assert.equal(run.status, 0, run.output);
    // A broken query must fail this check: the same file with one query cut short.
    writeFileSync(file, lines.join('\n').replace(/\)"$/m, '"') + '\n');
    assert.notEqual(runPromtool(promtool, ['check', 'rules', file]).status, 0);
  });

  it('rules and dashboard name only documented metrics, and the dashboard shows every one', () => {
    const documented = documentedMetrics();
    assert.ok(documented.size >= 10, `docs/operations.md lists ${documented.size} metrics`);
    const inRules = metricsIn(rulesText);
    const inDashboard = metricsIn(queries.map((q) => q.target.expr).join('\n'));
    assert.deepEqual(
      [...inRules].filter((m) => !documented.has(m)),
      [],
      'rules use undocumented metrics',
    );
    assert.deepEqual(
      [...inDashboard].filter((m) => !documented.has(m)),
      [],
      'dashboard uses undocumented metrics',
    );
    assert.deepEqual(
      [...documented].filter((m) => !inDashboard.has(m)),
      [],
      'documented metrics missing from the dashboard',
    );
  });

  it('the dashboard is well formed: unique ids, panels inside 24 columns, none overlapping', () => {
    const ids = dashboard.panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length);
    assert.deepEqual(
      dashboard.templating.list.map((v) => v.name),
      ['datasource', 'job', 'instance'],
    );
    const cells = new Set<string>();
    for (const panel of dashboard.panels) {
      const { h, w, x, y } = panel.gridPos;
      assert.ok(
        x >= 0 && w > 0 && x + w <= 24,
        `panel ${panel.id} '${panel.title}' is off the grid`,
      );
      for (let row = y; row < y + h; row++) {
        for (let col = x; col < x + w; col++) {
          const cell = `${row}:${col}`;
          assert.ok(!cells.has(cell), `panel ${panel.id} '${panel.title}' overlaps another`);
          cells.add(cell);
        }
      }
      if (panel.type !== 'row') {
        assert.equal(panel.datasource?.uid, '${datasource}', `panel ${panel.id} data source`);
        assert.ok((panel.targets ?? []).length > 0, `panel ${panel.id} has no query`);
      }
    }
  });
});
