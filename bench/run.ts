// `npm run bench`: drives the real podgate (compiled, in its own process) over
// HTTPS with keep-alive from a load generator in another process, next to a bare
// Fastify baseline, and prints requests/s, latency, RSS and the ratios. Figures
// from a shared 2-core machine are noisy: compare ratios within one run.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureDevCertificates } from '../src/certs/files.ts';
import { generateCertificates } from '../src/certs/generate.ts';
import { decide } from '../src/admission/decide.ts';
import { EMPTY_CLUSTER } from '../src/policy/cluster.ts';
import { staticKpoPods } from '../src/policy/kpoIndex.ts';
import { compilePolicy } from '../src/policy/registry.ts';
import { FakeApiServer } from '../test/helpers/fake-apiserver.ts';
import { makePod, makeRequest, makeReview } from '../test/helpers/builders.ts';
import { kpoLabels, makeKpoPod } from '../test/helpers/kpo.ts';
import { call } from '../test/helpers/https.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? '4');
const PODS = Number(process.env['BENCH_PODS'] ?? '50000');
const NODES = Number(process.env['BENCH_NODES'] ?? '5000');
const work = mkdtempSync(join(tmpdir(), 'podgate-bench-'));
const children: ChildProcess[] = [];
process.on('exit', () => {
  for (const child of children) child.kill('SIGTERM');
  rmSync(work, { recursive: true, force: true });
});

const say = (text: string) => process.stdout.write(`${text}\n`);
const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MiB`;
function rss(pid: number | undefined): number {
  const status = readFileSync(`/proc/${String(pid)}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? '0') * 1024;
}
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;

let logs = 0;
/**
 * Starts a server whose stdout goes to a file, not a pipe: this process blocks in
 * execFileSync while the load runs and could not drain a pipe, and podgate's
 * synchronous log writes would then stall on it (as they should on a stuck
 * collector; that is not what this measures).
 */
async function start(args: string[], ready: RegExp, env: NodeJS.ProcessEnv = {}): Promise<{ child: ChildProcess; port: number }> {
  const base: NodeJS.ProcessEnv = { ...process.env, KUBECONFIG: '/nonexistent' };
  delete base['KUBERNETES_SERVICE_HOST'];
  logs += 1;
  const logPath = join(work, `server-${logs}.log`);
  const out = openSync(logPath, 'w');
  const child = spawn(process.execPath, args, { cwd: work, stdio: ['ignore', out, 'inherit'], env: { ...base, ...env } });
  children.push(child);
  const deadline = Date.now() + 60_000;
  for (;;) {
    const match = ready.exec(readFileSync(logPath, 'utf8'));
    if (match) return { child, port: Number(match[1]) };
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`not ready: ${readFileSync(logPath, 'utf8').slice(-500)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

interface LoadFigures { rps: number; p50: number; p99: number; errors: number; timeouts?: number; non2xx?: number }
/** Closed loop, as fast as the server answers (autocannon): throughput. */
function load(port: number, path: string, body: string, connections: number): LoadFigures {
  const output = execFileSync(process.execPath, [join(ROOT, 'bench/load.ts'), `https://localhost:${port}${path}`, join(work, 'certs/ca.crt'), join(work, body), String(connections), String(SECONDS)], { encoding: 'utf8' });
  return JSON.parse(output) as LoadFigures;
}

/** Open loop at a fixed rate (bench/paced.ts): latency without coordinated omission, in microseconds. */
function paced(port: number, path: string, body: string, rate: number): LoadFigures {
  const output = execFileSync(process.execPath, [join(ROOT, 'bench/paced.ts'), `https://localhost:${port}${path}`, join(work, 'certs/ca.crt'), join(work, body), String(rate), String(SECONDS), '16'], { encoding: 'utf8' });
  return JSON.parse(output) as LoadFigures;
}

async function serverLatency(port: number, ca: string): Promise<{ sum: number; count: number }> {
  const text = (await call(`https://localhost:${port}/metrics`, { ca })).text;
  const read = (name: string) => text.split('\n').filter((l) => l.startsWith(name)).reduce((total, l) => total + Number(l.split(' ').at(-1)), 0);
  return { sum: read('podgate_admission_duration_seconds_sum'), count: read('podgate_admission_duration_seconds_count') };
}

// --- set-up ------------------------------------------------------------------------------------
say(`podgate benchmark: ${SECONDS}s per run, ${PODS} KPO pods and ${NODES} nodes in the cluster case; node ${process.version}, ${String(readFileSync('/proc/cpuinfo', 'utf8').match(/^processor/gm)?.length ?? '?')} cores`);
execFileSync('npm', ['run', '-s', 'build'], { cwd: ROOT, stdio: 'inherit' });
await ensureDevCertificates(join(work, 'certs'), ['localhost', '127.0.0.1']);
const ca = readFileSync(join(work, 'certs/ca.crt'), 'utf8');

const prodUser = { username: 'system:serviceaccount:airflow-prod:airflow-worker', groups: ['system:serviceaccounts', 'system:serviceaccounts:airflow-prod'] };
const kpoPod = makeKpoPod({ dagId: 'etl-daily', taskId: 'export', runId: 'scheduled__2026-11-23T00:00:00+00:00', operatorLabels: { 'podgate.io/environment': 'production' } });
writeFileSync(join(work, 'kpo.json'), JSON.stringify(makeReview(makeRequest(kpoPod, prodUser))));
writeFileSync(join(work, 'api-server.json'), readFileSync(join(ROOT, 'examples/api-server-too-small.json')));
writeFileSync(join(work, 'pinned.json'), JSON.stringify(makeReview(makeRequest(makePod({ name: 'export-4devg7t1', namespace: 'airflow-jobs', spec: { nodeName: 'node-00007' } }), prodUser))));

// The cluster: a local API server (HTTPS, bearer token) that podgate reaches as it does in a pod.
const apiCerts = await generateCertificates({ hosts: ['127.0.0.1'] });
const api = new FakeApiServer({ cert: apiCerts.cert, key: apiCerts.key });
const apiUrl = new URL(await api.start());
mkdirSync(join(work, 'serviceaccount'));
writeFileSync(join(work, 'serviceaccount/token'), api.token);
writeFileSync(join(work, 'serviceaccount/ca.crt'), apiCerts.caCert);
for (let i = 0; i < NODES; i += 1) api.add('/api/v1/nodes', { metadata: { name: `node-${String(i).padStart(5, '0')}`, labels: { 'kubernetes.io/hostname': `node-${String(i).padStart(5, '0')}`, 'topology.kubernetes.io/zone': `z${i % 3}`, ...(i % 1000 === 7 ? { 'podgate.io/quarantine': 'true' } : {}) } } });
for (let i = 0; i < PODS; i += 1) {
  api.add('/api/v1/pods', {
    metadata: {
      name: `task-${i}-${(i * 2654435761 >>> 0).toString(36).slice(0, 8)}`,
      namespace: `airflow-${i % 4}`,
      labels: { ...kpoLabels({ dagId: `dag-${i % 300}`, taskId: `task-${i % 50}`, runId: `scheduled__2026-11-23T${String(i).padStart(6, '0')}` }), 'podgate.io/environment': i % 2 ? 'alpha' : 'production', 'podgate.io/cluster-id': 'shared-cluster-1' },
    },
  });
}

const serveArgs = (extra: string[]) => [join(ROOT, 'dist/cli/main.js'), 'serve', '--port', '0', '--host', '127.0.0.1', '--log-format', 'json', '--tls-cert', join(work, 'certs/tls.crt'), '--tls-key', join(work, 'certs/tls.key'), ...extra];
const listening = /"port":(\d+)[^\n]*podgate listening/;
const baseline = await start([join(ROOT, 'bench/baseline.ts'), join(work, 'certs/tls.crt'), join(work, 'certs/tls.key')], /listening (\d+)/);
const empty = await start(serveArgs(['--offline']), listening);
const cluster = await start(serveArgs([]), listening, {
  KUBERNETES_SERVICE_HOST: apiUrl.hostname,
  KUBERNETES_SERVICE_PORT: apiUrl.port,
  PODGATE_SERVICEACCOUNT_DIR: join(work, 'serviceaccount'),
});
const t0 = Date.now();
for (;;) {
  const ready = await call(`https://localhost:${cluster.port}/readyz`, { ca });
  if (ready.status === 200) break;
  if (Date.now() - t0 > 120_000) throw new Error(`not ready: ${ready.text}`);
  await new Promise((resolve) => setTimeout(resolve, 250));
}
const syncSeconds = (Date.now() - t0) / 1000;
// A little traffic first, so both podgates have warmed up (JIT, TLS sessions) before they are weighed.
for (const server of [empty, cluster]) load(server.port, '/validate', 'kpo.json', 4);
const rssEmpty = rss(empty.child.pid);
const rssCluster = rss(cluster.child.pid);
say(`cluster watches synced in ${syncSeconds.toFixed(1)}s; RSS: empty caches ${mib(rssEmpty)}, with ${PODS} KPO pods + ${NODES} nodes ${mib(rssCluster)} (caches cost ${mib(rssCluster - rssEmpty)})`);

// --- runs --------------------------------------------------------------------------------------
const rows: string[][] = [['server', 'webhook', 'review', 'conns', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'RSS']];
const row = (server: string, webhook: string, review: string, conns: number, f: LoadFigures, pid: number | undefined) => {
  const ms = (value: number) => (Number.isInteger(value) ? String(value) : value.toFixed(2));
  rows.push([server, webhook, review, String(conns), f.rps.toFixed(0), ms(f.p50), ms(f.p99), String(f.errors + (f.timeouts ?? 0) + (f.non2xx ?? 0)), mib(rss(pid))]);
  return f;
};
const base16 = row('baseline', '-', 'KPO pod', 16, load(baseline.port, '/validate', 'kpo.json', 16), baseline.child.pid);
const figures: Record<string, LoadFigures> = {};
for (const conns of [1, 16, 64]) figures[`validate-kpo-${conns}`] = row('podgate', '/validate', 'KPO pod', conns, load(empty.port, '/validate', 'kpo.json', conns), empty.child.pid);
figures['validate-api'] = row('podgate', '/validate', 'api-server Deployment', 16, load(empty.port, '/validate', 'api-server.json', 16), empty.child.pid);
figures['validate-pinned'] = row('podgate', '/validate', 'pinned pod', 16, load(empty.port, '/validate', 'pinned.json', 16), empty.child.pid);
figures['mutate-kpo'] = row('podgate', '/mutate', 'KPO pod', 16, load(empty.port, '/mutate', 'kpo.json', 16), empty.child.pid);

const baseRate = row('baseline', '-', 'KPO pod @1000/s', 16, paced(baseline.port, '/validate', 'kpo.json', 1000), baseline.child.pid);
const before = await serverLatency(empty.port, ca);
const emptyRate = row('podgate', '/validate', 'KPO pod @1000/s', 16, paced(empty.port, '/validate', 'kpo.json', 1000), empty.child.pid);
const after = await serverLatency(empty.port, ca);
const clusterBefore = await serverLatency(cluster.port, ca);
const clusterRate = row(`podgate+${PODS / 1000}k pods`, '/validate', 'KPO pod @1000/s', 16, paced(cluster.port, '/validate', 'kpo.json', 1000), cluster.child.pid);
const clusterAfter = await serverLatency(cluster.port, ca);
row(`podgate+${PODS / 1000}k pods`, '/validate', 'KPO pod', 16, load(cluster.port, '/validate', 'kpo.json', 16), cluster.child.pid);
row(`podgate+${PODS / 1000}k pods`, '/validate', 'pinned pod', 16, load(cluster.port, '/validate', 'pinned.json', 16), cluster.child.pid);

const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
for (const r of rows) say(r.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  '));

// --- the decision alone: collision lookup against 50k cached pods vs none ------------------------
const compiled = compilePolicy({
  apiVersion: 'podgate.io/v1alpha1',
  kind: 'Policy',
  airflow: { clusterId: 'shared-cluster-1', environments: [{ name: 'production', serviceAccountNamespaces: ['airflow-prod'] }, { name: 'alpha', serviceAccountNamespaces: ['airflow-alpha'] }] },
  rules: [{ name: 'c', kind: 'kpoCollisionGuard' }],
});
if (!compiled.ok) throw new Error('bench policy');
// One pod per task instance (as in a real cluster), one of which is the request's own task in this environment.
const index = staticKpoPods(
  Array.from({ length: PODS }, (_, i) => ({ name: `p${i}`, namespace: 'airflow', labels: new Map(Object.entries({ ...kpoLabels({ dagId: `dag-${i % 300}`, taskId: `task-${i % 50}`, runId: `r${i}` }), 'podgate.io/environment': 'production' })) })),
);
const request = makeRequest(makeKpoPod({ dagId: 'dag-7', taskId: 'task-7', runId: 'r7', suffix: 'retry2', tryNumber: 2 }), prodUser);
const time = (cluster: typeof EMPTY_CLUSTER) => {
  const rounds: number[] = [];
  for (let round = 0; round < 7; round += 1) {
    const startNs = process.hrtime.bigint();
    for (let i = 0; i < 20_000; i += 1) decide('validate', request, compiled.policy, cluster);
    rounds.push(Number(process.hrtime.bigint() - startNs) / 20_000);
  }
  return median(rounds);
};
const synced = { ...EMPTY_CLUSTER, kpoPods: staticKpoPods([]) };
if (decide('validate', request, compiled.policy, { ...EMPTY_CLUSTER, kpoPods: index }).reports[0]?.status !== 'pass') throw new Error('the micro benchmark should exercise a lookup that finds a pod and passes');
const nsEmpty = time(synced);
const nsFull = time({ ...EMPTY_CLUSTER, kpoPods: index });

// --- summary -------------------------------------------------------------------------------------
const meanUs = (a: { sum: number; count: number }, b: { sum: number; count: number }) => ((b.sum - a.sum) / Math.max(1, b.count - a.count)) * 1e6;
const emptyUs = meanUs(before, after);
const clusterUs = meanUs(clusterBefore, clusterAfter);
say('');
say(`throughput /validate (whole sample policy, KPO pod, 16 conns): podgate ${figures['validate-kpo-16']?.rps.toFixed(0) ?? '?'} req/s vs baseline ${base16.rps.toFixed(0)} req/s = ${(((figures['validate-kpo-16']?.rps ?? 0) / base16.rps) * 100).toFixed(0)}% (target >= 70%)`);
say(`p99 at 1000 req/s (open loop, from the due time): podgate ${emptyRate.p99.toFixed(2)} ms (empty caches), ${clusterRate.p99.toFixed(2)} ms (${PODS} pods + ${NODES} nodes); bare Fastify ${baseRate.p99.toFixed(2)} ms (target < 5 ms)`);
say(`server-side mean admission latency at 1000 req/s: ${emptyUs.toFixed(0)} us empty vs ${clusterUs.toFixed(0)} us with ${PODS} pods = ${((clusterUs / emptyUs) * 100).toFixed(0)}%`);
say(`decide() with the collision rule: ${(nsEmpty / 1000).toFixed(2)} us with an empty index vs ${(nsFull / 1000).toFixed(2)} us with ${PODS} pods = ${((nsFull / nsEmpty) * 100).toFixed(0)}% (target within 110%)`);
say(`memory: ${PODS} KPO pods + ${NODES} nodes cached: RSS ${mib(rssCluster)} (target < 200 MiB); the caches cost ${mib(rssCluster - rssEmpty)}`);
await api.close();
process.exit(0);
