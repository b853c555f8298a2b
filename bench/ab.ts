// `node bench/ab.ts <dist-A> <dist-B> [<dist-C> ...]`: what a change costs per review, as
// CPU time of the server. Compiled podgates (copies of dist/ before and after a change)
// are started side by side against one empty fake cluster, and weighed in interleaved
// rounds (A B C, C B A, ...) with the others paused, so a neighbour's burst on this shared
// machine lands on both sides. CPU microseconds per request is the figure: requests/s
// moves with the load generator's share of the two cores, CPU per request far less.
// BENCH_BASELINE=1 adds the bare Fastify baseline as a third side. BENCH_RATE=<req/s> drives every side at the
// same fixed rate instead of as fast as it answers: CPU per review then compares the work itself, not how often
// a slower server finds its client asleep and pays to wake it (on 2 shared cores, about double).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureDevCertificates } from '../src/certs/files.ts';
import { generateCertificates } from '../src/certs/generate.ts';
import { FakeApiServer } from '../test/helpers/fake-apiserver.ts';
import { makeRequest, makeReview } from '../test/helpers/builders.ts';
import { makeKpoPod } from '../test/helpers/kpo.ts';
import { call } from '../test/helpers/https.ts';
import { deployedNodeFlags } from './flags.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const dists = process.argv.slice(2);
if (dists.length < 2) throw new Error('usage: node bench/ab.ts <dist-A> <dist-B> [<dist-C> ...] (BENCH_ROUNDS, BENCH_SECONDS, BENCH_BASELINE=1, BENCH_RATE)');
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? '9');
const SECONDS = process.env['BENCH_SECONDS'] ?? '3';
const CONNECTIONS = process.env['BENCH_CONNECTIONS'] ?? '16';
/** Requests per second in all, for a fixed-rate run (0: as fast as the server answers). */
const RATE = process.env['BENCH_RATE'] ?? '0';
const work = mkdtempSync(join(tmpdir(), 'podgate-ab-'));
const children: ChildProcess[] = [];
process.on('exit', () => {
  for (const child of children) {
    child.kill('SIGCONT');
    child.kill('SIGTERM');
  }
  rmSync(work, { recursive: true, force: true });
});

await ensureDevCertificates(join(work, 'certs'), ['localhost', '127.0.0.1']);
const ca = readFileSync(join(work, 'certs/ca.crt'), 'utf8');
const user = { username: 'system:serviceaccount:airflow-prod:airflow-worker', groups: ['system:serviceaccounts', 'system:serviceaccounts:airflow-prod'] };
const pod = makeKpoPod({ dagId: 'etl-daily', taskId: 'export', runId: 'scheduled__2026-11-23T00:00:00+00:00', operatorLabels: { 'podgate.io/environment': 'production' } });
writeFileSync(join(work, 'kpo.json'), JSON.stringify(makeReview(makeRequest(pod, user))));

const apiCerts = await generateCertificates({ hosts: ['127.0.0.1'] });
const api = new FakeApiServer({ cert: apiCerts.cert, key: apiCerts.key });
const apiUrl = new URL(await api.start());
const account = join(work, 'serviceaccount');
mkdirSync(account);
writeFileSync(join(account, 'token'), api.token);
writeFileSync(join(account, 'ca.crt'), apiCerts.caCert);

interface Side { readonly name: string; readonly child: ChildProcess; readonly port: number }
async function start(name: string, args: string[]): Promise<Side> {
  const logPath = join(work, `${name}.log`);
  const env: NodeJS.ProcessEnv = { ...process.env, KUBECONFIG: '/nonexistent', KUBERNETES_SERVICE_HOST: apiUrl.hostname, KUBERNETES_SERVICE_PORT: apiUrl.port, PODGATE_SERVICEACCOUNT_DIR: account };
  const child = spawn(process.execPath, [...deployedNodeFlags(), ...args], { cwd: work, stdio: ['ignore', openSync(logPath, 'w'), 'inherit'], env });
  children.push(child);
  const deadline = Date.now() + 60_000;
  for (;;) {
    const match = /"port":(\d+)[^\n]*podgate listening|listening (\d+)/.exec(readFileSync(logPath, 'utf8'));
    if (match) return { name, child, port: Number(match[1] ?? match[2]) };
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`${name} not ready: ${readFileSync(logPath, 'utf8').slice(-500)}`);
    await new Promise((done) => setTimeout(done, 100));
  }
}
const hasOpsPort = (dist: string) => readFileSync(join(resolve(dist), 'cli/serve.js'), 'utf8').includes('metrics-port');
const podgate = (name: string, dist: string) =>
  start(name, [join(resolve(dist), 'cli/main.js'), 'serve', '--port', '0', ...(hasOpsPort(dist) ? ['--metrics-port', '0'] : []), '--host', '127.0.0.1', '--log-format', 'json', '--tls-cert', join(work, 'certs/tls.crt'), '--tls-key', join(work, 'certs/tls.key')]);
/** Sides are named A, B, C... in the order given, and 'baseline'. */
const named = dists.map((dist, i) => ({ name: String.fromCharCode(65 + i), dist }));
const kinds = [...named.map((side) => side.name), ...(process.env['BENCH_BASELINE'] === undefined ? [] : ['baseline'])];
/** A fresh process per side and round: one process's draw (JIT, memory layout, scheduling) sticks with it, so A against an identical A measured ~8% apart when each side kept one process. */
async function fresh(kind: string): Promise<Side> {
  const dist = named.find((side) => side.name === kind)?.dist;
  const side = dist === undefined ? await start(kind, [join(ROOT, 'bench/baseline.ts'), join(work, 'certs/tls.crt'), join(work, 'certs/tls.key')]) : await podgate(kind, dist);
  for (let ready = kind === 'baseline'; !ready; await new Promise((done) => setTimeout(done, 200))) ready = (await call(`https://localhost:${side.port}/readyz`, { ca })).status === 200;
  return side;
}
let sides: Side[] = [];
async function stop(side: Side): Promise<void> {
  const exited = new Promise((done) => side.child.once('exit', done));
  side.child.kill('SIGCONT');
  side.child.kill('SIGTERM');
  await exited;
  children.splice(children.indexOf(side.child), 1);
}
const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
function cpuUs(pid: number | undefined): number {
  const fields = readFileSync(`/proc/${String(pid)}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return ((Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS) * 1e6;
}
/** One closed-loop run against `side` with every other side paused: CPU us per request and requests/s. */
function weigh(side: Side, seconds: string): { cpu: number; rps: number } {
  const others = sides.filter((other) => other !== side);
  for (const other of others) other.child.kill('SIGSTOP');
  try {
    const before = cpuUs(side.child.pid);
    const output = execFileSync(process.execPath, [join(ROOT, 'bench/load.ts'), `https://localhost:${side.port}/validate`, join(work, 'certs/ca.crt'), join(work, 'kpo.json'), CONNECTIONS, seconds, RATE], { encoding: 'utf8' });
    const figures = JSON.parse(output) as { rps: number; total: number };
    return { cpu: (cpuUs(side.child.pid) - before) / Math.max(1, figures.total), rps: figures.rps };
  } finally {
    for (const other of others) other.child.kill('SIGCONT');
  }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;
const cpu = new Map<string, number[]>(kinds.map((kind) => [kind, []]));
const rps = new Map<string, number[]>(kinds.map((kind) => [kind, []]));
for (let round = 0; round < ROUNDS; round += 1) {
  sides = [];
  for (const kind of kinds) sides.push(await fresh(kind));
  for (const side of sides) weigh(side, '1'); // warm-up: JIT and TLS sessions
  for (const side of round % 2 === 0 ? sides : [...sides].reverse()) {
    const figures = weigh(side, SECONDS);
    cpu.get(side.name)?.push(figures.cpu);
    rps.get(side.name)?.push(figures.rps);
  }
  await Promise.all(sides.map(stop));
}
for (const kind of kinds) {
  const us = cpu.get(kind) ?? [];
  process.stdout.write(`${kind.padEnd(8)} CPU us/review median ${median(us).toFixed(1)} [${us.map((v) => v.toFixed(1)).join(' ')}]; req/s median ${median(rps.get(kind) ?? []).toFixed(0)}\n`);
}
const percent = (ratio: number) => `${(ratio * 100).toFixed(0)}%`;
const first = cpu.get('A') ?? [];
for (const { name } of named.slice(1)) {
  const ratios = first.map((a, i) => (cpu.get(name)?.[i] ?? a) / a);
  process.stdout.write(`${name}/A CPU per review, per round: ${ratios.map(percent).join(' ')}; median ${percent(median(ratios))}\n`);
}
const base = cpu.get('baseline');
if (base !== undefined) {
  for (const { name } of named) {
    const shares = base.map((b, i) => b / (cpu.get(name)?.[i] ?? b));
    const rates = (rps.get(name) ?? []).map((r, i) => r / (rps.get('baseline')?.[i] ?? r));
    process.stdout.write(`${name} against the baseline, per round: CPU ${shares.map(percent).join(' ')}, median ${percent(median(shares))}; req/s ${rates.map(percent).join(' ')}, median ${percent(median(rates))}\n`);
  }
}
await api.close();
process.exit(0);
