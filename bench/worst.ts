// The worst cases `npm run bench` prints last (also `node --expose-gc bench/worst.ts`):
// - per rule kind, the slowest review built within the body limit, and what podgate's
//   work on it costs (the scan of the text, the envelope check and decide(), in this process: server-side time);
// - peak RSS of the compiled server, with the Deployment's V8 flags, under concurrent
//   maximum-size reviews;
// - heap bytes per cached KubernetesPodOperator pod, for a usual pod and a label-heavy one.
// Times are medians of a few runs on a shared machine: read them against the ~50 ms the
// event loop may be held at most. Run as `node --expose-gc bench/worst.ts` after `npm run build`.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent } from 'node:https';
import { decide } from '../src/engine/decide.ts';
import { BODY_STEP_CHARS, readAdmissionReview, readInTurns, type ReadReview } from '../src/admission/review.ts';
import { scanBody } from '../src/admission/oversized.ts';
import { EMPTY_CLUSTER, staticNodes, type ClusterState, type NodeInfo } from '../src/policy/cluster.ts';
import { staticKpoPods, KpoPodIndex } from '../src/kube/kpoIndex.ts';
import { CompactLabels } from '../src/kube/labels.ts';
import { slimKpoPod } from '../src/kube/watches.ts';
import { compilePolicy } from '../src/policy/registry.ts';
import { readPolicyFile } from '../src/config/load.ts';
import type { Phase } from '../src/policy/rule.ts';
import { DEFAULT_BODY_LIMIT } from '../src/server/app.ts';
import { makeController, makePod, makeRequest, makeReview } from '../test/helpers/builders.ts';
import { kpoLabels, makeKpoPod } from '../test/helpers/kpo.ts';
import { call } from '../test/helpers/https.ts';
import { deployedNodeFlags } from './flags.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const say = (text: string) => process.stdout.write(`${text}\n`);
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;
const mib = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MiB`;

const loaded = await readPolicyFile(join(ROOT, 'manifests/base/podgate.yaml'), compilePolicy);
if (!loaded.ok) throw new Error('the sample policy does not load');
const policy = loaded.policy;
const PROD = { username: 'system:serviceaccount:airflow-prod:airflow-worker', groups: ['system:serviceaccounts'] };
const ALPHA = { username: 'system:serviceaccount:airflow-alpha:airflow-worker', groups: ['system:serviceaccounts'] };

const nodes: NodeInfo[] = Array.from({ length: 5000 }, (_, i) => ({ name: `node-${i}`, labels: new CompactLabels(Object.entries({ 'kubernetes.io/hostname': `node-${i}`, 'topology.kubernetes.io/zone': `z${i % 3}`, ...(i % 1000 === 7 ? { 'podgate.io/quarantine': 'true' } : {}) })) }));
const withNodes: ClusterState = { ...EMPTY_CLUSTER, nodes: staticNodes(nodes) };

/**
 * What podgate does with a body, as the server does it: one turn of the event loop for a
 * body up to BODY_STEP_CHARS (readAdmissionReview, then decide()); for a larger one, the
 * server's own readInTurns (a turn per scan step, then per parse step), then a turn for
 * decide(). In milliseconds, medians of five: JSON.parse of the whole body, timed apart
 * (any webhook pays it); podgate's work beyond it (for a large body, all its turns less
 * that JSON.parse: what parsing in steps adds is podgate's); and the longest turn: how
 * long the event loop is held at once.
 */
async function cost(phase: Phase, body: string, cluster: ClusterState): Promise<{ parseMs: number; ms: number; longestTurnMs: number; verdict: string }> {
  const times: number[] = [];
  const parseTimes: number[] = [];
  const longestTurns: number[] = [];
  let verdict = '';
  for (let i = 0; i < 5; i += 1) {
    const turns: number[] = [];
    const turn = <T>(run: () => T): T => {
      const started = performance.now();
      const result = run();
      turns.push(performance.now() - started);
      return result;
    };
    const judge = (read: ReadReview) => {
      if (!read.ok) return `400: ${read.error.slice(0, 70)}…`;
      const decision = decide(phase, read.review.request, policy, cluster, read.oversized);
      return decision.allowed ? (decision.patch.length > 0 ? `patched (${decision.patch.length} ops)` : 'allowed') : `denied: ${decision.denial.message.slice(0, 70)}…`;
    };
    if (body.length <= BODY_STEP_CHARS) verdict = turn(() => judge(readAdmissionReview(body)));
    else {
      // Each await of `between` ends a turn: the time since the last mark is what that turn held the loop for.
      let mark = performance.now();
      const between = async () => {
        const now = performance.now();
        turns.push(now - mark);
        await Promise.resolve();
        mark = performance.now();
      };
      const read = await readInTurns(body, between);
      turns.push(performance.now() - mark);
      verdict = turn(() => judge(read));
    }
    const parseMs = timed(() => JSON.parse(body));
    parseTimes.push(parseMs);
    // A body refused before parsing (too deep) never pays the JSON.parse shown beside it.
    times.push(turns.reduce((sum, ms) => sum + ms, 0) - (scanBody(body).shape === 'tooDeep' ? 0 : parseMs));
    longestTurns.push(Math.max(...turns));
  }
  return { parseMs: median(parseTimes), ms: median(times), longestTurnMs: median(longestTurns), verdict };
}

function timed(run: () => unknown): number {
  const started = performance.now();
  run();
  return performance.now() - started;
}

const affinity = (terms: unknown[]) => ({ affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: terms } } } });
const fill = <T>(count: number, make: (i: number) => T) => Array.from({ length: count }, (_, i) => make(i));
/** A case given as text: JSON.stringify cannot write a value nested this deep. */
class RawBody {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
}
const deepNesting = (levels: number) => new RawBody(`${'['.repeat(levels)}${']'.repeat(levels)}`);
const labelsOf = (count: number) => Object.fromEntries(fill(count, (i) => [`k${i}.example.com/label-${i}`, `value-${i}`]));
const withAnnotations = (pod: Record<string, unknown>, count: number) => {
  (pod['metadata'] as { annotations?: Record<string, string> }).annotations = labelsOf(count);
  return pod;
};
const heavyKpo = (count: number, extra: Record<string, string> = {}) => {
  const pod = makeKpoPod({ suffix: `h${count}` });
  (pod['metadata'] as { labels: Record<string, string> }).labels = { ...labelsOf(count), ...kpoLabels(), ...extra };
  return pod;
};
const bigContainers = (count: number) => fill(count, (i) => ({ name: `api-server-${i}`, requests: { cpu: '100m', memory: '1Gi' }, limits: { memory: '1Gi' } }));

/** Label-heavy cached pods of the same task instance as the request, slimmed as the watch slims them. */
const heavyCache = new KpoPodIndex();
const kept = new Set(['dag_id', 'task_id', 'run_id', 'map_index', 'kubernetes_pod_operator', 'already_checked', 'airflow-worker', 'podgate.io/environment']);
for (let i = 0; i < 5; i += 1) {
  const slim = slimKpoPod({ name: `alpha-${i}`, namespace: 'airflow', labels: { ...labelsOf(20_000), ...kpoLabels(), 'podgate.io/environment': 'alpha' } }, kept);
  if (slim) heavyCache.upsert(slim);
}

const cases: { kind: string; what: string; phase: Phase; review: () => unknown; cluster: ClusterState }[] = [
  {
    kind: 'envelope',
    what: '1,900,000 non-string groups',
    phase: 'validate',
    review: () => {
      const review = makeReview(makeRequest(makePod()));
      return { ...review, request: { ...review.request, userInfo: { username: 'x', groups: fill(1_900_000, () => 1) } } };
    },
    cluster: EMPTY_CLUSTER,
  },
  { kind: 'resourceFloors', what: 'a Pod of 30,000 api-server containers', phase: 'validate', review: () => makeReview(makeRequest(makePod({ namespace: 'airflow', labels: { component: 'api-server' }, containers: bigContainers(30_000) }))), cluster: EMPTY_CLUSTER },
  {
    kind: 'resourceFloors',
    what: 'an UPDATE of a Deployment with 2 x 12,000 containers',
    phase: 'validate',
    review: () => {
      const make = (memory: string) => makeController('Deployment', 'airflow-api-server', { labels: { component: 'api-server' }, containers: bigContainers(12_000).map((c) => ({ ...c, limits: { memory } })) });
      return makeReview(makeRequest(make('1Gi'), { operation: 'UPDATE', oldObject: make('2Gi') }));
    },
    cluster: EMPTY_CLUSTER,
  },
  {
    kind: 'nodeDenylist',
    what: 'one hostname In list of 60,000 values (near the budget), 5,000 nodes',
    phase: 'validate',
    review: () => makeReview(makeRequest(makePod({ namespace: 'airflow', spec: affinity([{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: fill(60_000, (i) => `node-${i}`) }] }]) }))),
    cluster: withNodes,
  },
  {
    kind: 'nodeDenylist',
    what: 'two 60,000-value hostname In lists, 5,000 nodes',
    phase: 'validate',
    review: () => {
      const values = fill(60_000, (i) => `node-${i}`);
      return makeReview(makeRequest(makePod({ namespace: 'airflow', spec: affinity([{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values }, { key: 'kubernetes.io/hostname', operator: 'In', values }] }]) })));
    },
    cluster: withNodes,
  },
  { kind: 'nodeDenylist', what: '15,000 one-value terms, 5,000 nodes (past the check budget)', phase: 'validate', review: () => makeReview(makeRequest(makePod({ namespace: 'airflow', spec: affinity(fill(15_000, (i) => ({ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: [`absent-${i}`] }] }))) }))), cluster: withNodes },
  { kind: 'nodeDenylist', what: '8 terms of 10 NotIn + a pin, 5,000 nodes (near the budget)', phase: 'validate', review: () => makeReview(makeRequest(makePod({ namespace: 'airflow', spec: affinity(fill(8, (i) => ({ matchExpressions: fill(10, (j) => ({ key: `k${j}`, operator: 'NotIn', values: [`v${i}`] })).concat([{ key: 'kubernetes.io/hostname', operator: 'In', values: ['node-7'] }]) }))) }))), cluster: withNodes },
  {
    kind: 'nodeDenylist',
    what: 'a nodeSelector of 10,000 entries (the most podgate walks), 5,000 nodes',
    phase: 'validate',
    review: () => makeReview(makeRequest(makePod({ namespace: 'airflow', spec: { nodeSelector: { 'topology.kubernetes.io/zone': 'z1', ...Object.fromEntries(fill(9_999, (i) => [`k${i}`, 'v'])) } } }))),
    cluster: withNodes,
  },
  { kind: 'envelope', what: 'nesting 2,000,000 levels deep', phase: 'validate', review: () => deepNesting(2_000_000), cluster: EMPTY_CLUSTER },
  { kind: 'kpoEnvironment', what: 'a KPO pod with 100,000 labels (mutate)', phase: 'mutate', review: () => makeReview(makeRequest(heavyKpo(100_000), PROD)), cluster: EMPTY_CLUSTER },
  { kind: 'kpoCollisionGuard', what: 'a KPO pod with 50,000 labels, 5 cached pods of its task with 20,000 each', phase: 'validate', review: () => makeReview(makeRequest(heavyKpo(50_000), PROD)), cluster: { ...EMPTY_CLUSTER, kpoPods: heavyCache } },
  { kind: 'podMetadata', what: 'a KPO pod with 100,000 annotations (mutate)', phase: 'mutate', review: () => makeReview(makeRequest(withAnnotations(makeKpoPod({ suffix: 'a100k' }), 100_000), PROD)), cluster: EMPTY_CLUSTER },
  { kind: 'gracePeriodFloor', what: 'a worker StatefulSet whose grace period is an array of 1,000,000 numbers', phase: 'validate', review: () => makeReview(makeRequest(makeController('StatefulSet', 'airflow-worker', { labels: { component: 'worker' }, spec: { terminationGracePeriodSeconds: fill(1_000_000, () => 1) } }))), cluster: EMPTY_CLUSTER },
  {
    kind: 'kpoOwnership',
    what: 'an UPDATE of a KPO pod with 2 x 50,000 labels',
    phase: 'validate',
    review: () => makeReview(makeRequest(heavyKpo(50_000, { 'podgate.io/environment': 'alpha' }), { ...ALPHA, operation: 'UPDATE', oldObject: heavyKpo(50_000, { 'podgate.io/environment': 'alpha' }) })),
    cluster: EMPTY_CLUSTER,
  },
];

say('worst cases: the slowest review per rule kind within the body limit; JSON.parse (any webhook pays it), then podgate beyond it: the scan of the text, the envelope check, decide; and the longest event-loop turn the server gives it (a body over 512 KiB is scanned, then parsed, a step per turn) (medians of 5)');
const rows: string[][] = [['rule kind', 'review', 'size', 'parse ms', 'podgate ms', 'longest turn ms', 'verdict']];
for (const { kind, what, phase, review, cluster } of cases) {
  const value = review();
  const body = value instanceof RawBody ? value.text : JSON.stringify(value);
  if (body.length > DEFAULT_BODY_LIMIT) throw new Error(`${what}: ${body.length} bytes is over the body limit`);
  const { parseMs, ms, longestTurnMs, verdict } = await cost(phase, body, cluster);
  rows.push([kind, what, mib(body.length), parseMs.toFixed(1), ms.toFixed(1), longestTurnMs.toFixed(1), verdict]);
}
const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
for (const r of rows) say(`  ${r.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ')}`);

// --- bytes per cached KPO pod ---
const gc = (globalThis as { gc?: () => void }).gc;
function heapPerPod(labelCount: number): number {
  gc?.();
  const before = process.memoryUsage().heapUsed;
  const pods = fill(20_000, (i) => {
    const extra = Object.fromEntries(fill(labelCount, (j) => [`team.example.com/tag-${j}`, `v-${i}-${j}`]));
    return slimKpoPod({ name: `export-${i}-x8k2m9qa`, namespace: 'airflow', labels: { ...kpoLabels({ runId: `scheduled__${i}` }), 'podgate.io/environment': 'production', ...extra } }, kept);
  });
  const index = staticKpoPods(pods.filter((pod) => pod !== undefined));
  gc?.();
  const after = process.memoryUsage().heapUsed;
  if (index.size !== 20_000) throw new Error('index');
  return (after - before) / 20_000;
}
say(`cached KPO pod, heap bytes each (20,000 pods, after GC${gc ? '' : ' - run with --expose-gc for exact figures'}): usual pod (~10 labels) ${heapPerPod(0).toFixed(0)} B; 500 extra labels ${heapPerPod(500).toFixed(0)} B (at most 32 extra labels are kept)`);

// --- RSS under concurrent maximum-size reviews, the compiled server as deployed ---
const work = mkdtempSync(join(tmpdir(), 'podgate-worst-'));
const flags = process.env['BENCH_NODE_FLAGS']?.split(/\s+/).filter(Boolean) ?? deployedNodeFlags();
const server = spawn(process.execPath, [...flags, join(ROOT, 'dist/cli/main.js'), 'serve', '--offline', '--port', '0', '--metrics-port', '0', '--host', '127.0.0.1', '--log-format', 'json', '--certs-dir', join(work, 'certs')], { cwd: work, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, KUBECONFIG: '/nonexistent' } });
const port = await new Promise<number>((resolve, reject) => {
  let text = '';
  server.stdout.on('data', (chunk: Buffer) => {
    text += chunk.toString('utf8');
    const match = /"port":(\d+)[^\n]*podgate listening/.exec(text);
    if (match) resolve(Number(match[1]));
  });
  server.once('exit', () => { reject(new Error(`the server exited: ${text.slice(-300)}`)); });
});
server.stdout.resume();
// The server made its own development CA in --certs-dir; trust that one.
const ca = readFileSync(join(work, 'certs', 'ca.crt'), 'utf8');
const hwm = () => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${String(server.pid)}/status`, 'utf8'))?.[1] ?? '0') * 1024;
const maxBody = JSON.stringify(makeReview(makeRequest(makePod({ name: 'big', namespace: 'airflow', spec: { containers: [{ name: 'c', image: 'i', env: [{ name: 'BLOB', value: 'x'.repeat(DEFAULT_BODY_LIMIT - 100 * 1024) }] }] } }))));
const idle = hwm();
for (const concurrent of [10, 40, 200]) {
  const agent = new Agent({ keepAlive: false, maxSockets: concurrent });
  const answers = await Promise.all(fill(concurrent, () => call(`https://localhost:${port}/validate`, { ca, body: maxBody, agent }).then((r) => r.status, () => -1)));
  agent.destroy();
  const count = (status: number) => answers.filter((answer) => answer === status).length;
  say(`${concurrent} concurrent ${mib(maxBody.length)} reviews: ${count(200)} decided, ${count(503)} refused at once (503), ${count(-1)} closed by podgate (after a 503, or at the 10 s request deadline while the flood was still uploading); peak RSS ${mib(hwm())} (idle ${mib(idle)}; the Deployment's limit 256 MiB)`);
}
server.kill('SIGTERM');
rmSync(work, { recursive: true, force: true });
