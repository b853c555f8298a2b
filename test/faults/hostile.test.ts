import t from 'tap';
import { readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect as tcpConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { Agent } from 'node:https';
import { call } from '../helpers/https.ts';
import { startProcess, type ServerProcess } from '../helpers/process.ts';
import { makePod, makeRequest, makeReview } from '../helpers/builders.ts';
import { ALPHA, makeKpoPod } from '../helpers/kpo.ts';
import { waitFor } from '../helpers/wait.ts';

/**
 * Hostile or merely unlucky input against the real server process, with the
 * Deployment's NODE_OPTIONS: it stays up, answers stay valid or bounded errors,
 * /healthz keeps answering, memory stays under the Deployment's 256Mi limit.
 * Bounds are counted or wide; nothing here races a clock it could lose.
 */
const DEPLOYMENT_NODE_OPTIONS = '--max-semi-space-size=8 --max-old-space-size=160';
const MEMORY_LIMIT = 256 * 1024 * 1024;

/** The server's high-water mark of resident memory (VmHWM), in bytes. */
function peakRss(pid: number | undefined): number {
  const status = readFileSync(`/proc/${String(pid)}/status`, 'utf8');
  const kib = /VmHWM:\s+(\d+) kB/.exec(status)?.[1];
  return Number(kib) * 1024;
}

/** A subtest, as tap hands it to a test function. */
type Subtest = Pick<typeof t, 'testdir' | 'teardown'>;

async function started(t: Subtest, args: string[] = [], files: Parameters<typeof t.testdir>[0] = {}): Promise<{ server: ServerProcess; ca: string; url: string; cwd: string }> {
  const cwd = t.testdir(files);
  const server = await startProcess(['--offline', ...args], cwd, { NODE_OPTIONS: DEPLOYMENT_NODE_OPTIONS });
  t.teardown(() => server.child.kill('SIGTERM'));
  const ca = await readFile(join(cwd, 'certs', 'ca.crt'), 'utf8');
  return { server, ca, url: `https://localhost:${server.port}`, cwd };
}

/**
 * A TLS connection from `from` (all of 127/8 is this machine) that sends the headers of a
 * review of `bytes` and none of its body; `closed` settles when podgate closes it, `text`
 * is what it answered.
 */
async function announce(t: Subtest, port: number, ca: string, from: string, bytes: number): Promise<{ closed: Promise<boolean>; text: () => string }> {
  const socket = tlsConnect({ socket: tcpConnect({ host: '127.0.0.1', port, localAddress: from }), ca, servername: 'localhost' });
  socket.on('error', () => undefined);
  t.teardown(() => { socket.destroy(); });
  let text = '';
  socket.on('data', (chunk: Buffer) => { text += chunk.toString('utf8'); });
  const closed = new Promise<boolean>((resolve) => socket.once('close', () => { resolve(true); }));
  await new Promise<void>((resolve) => socket.once('secureConnect', () => { resolve(); }));
  socket.write(`POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${bytes}\r\n\r\n`);
  return { closed, text: () => text };
}

const stillOpen = (closed: Promise<boolean>, ms: number) => Promise.race([closed.then(() => false), new Promise<boolean>((resolve) => setTimeout(() => { resolve(true); }, ms))]);

t.test('one review with 200,000 malformed groups: a short 400, and the server stays up', async (t) => {
  const { server, ca, url } = await started(t);
  const review = makeReview(makeRequest(makePod()));
  const groups = Array.from({ length: 200_000 }, () => 1);
  const body = JSON.stringify({ ...review, request: { ...review.request, userInfo: { username: 'x', groups } } });
  const res = await call(`${url}/validate`, { ca, body });
  t.equal(res.status, 400);
  t.same(res.body, { error: 'not an AdmissionReview podgate can answer: request.userInfo.groups[0]: must be a string, found number' });
  t.equal((await call(`${url}/healthz`, { ca })).status, 200, 'still serving');
  t.equal(server.child.exitCode, null);
  t.ok(peakRss(server.child.pid) < MEMORY_LIMIT, `peak RSS ${peakRss(server.child.pid)} bytes`);
});

t.test('a pod with two 25,000-value hostname lists is judged while /healthz keeps answering', async (t) => {
  const { ca, url } = await started(t);
  const values = Array.from({ length: 25_000 }, (_, i) => `node-${i}`);
  const term = { matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values }, { key: 'kubernetes.io/hostname', operator: 'In', values }] };
  const pod = makePod({ name: 'wide', namespace: 'airflow', spec: { affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [term] } } } } });
  const review = makeReview(makeRequest(pod));
  const answers = await Promise.all([call(`${url}/validate`, { ca, body: JSON.stringify(review) }), call(`${url}/healthz`, { ca })]);
  t.equal(answers[0].status, 200, 'answered');
  t.equal((answers[0].body as { response: { allowed: boolean } }).response.allowed, true, 'no node of the denylist is named');
  t.equal(answers[1].status, 200);
});

t.test('a KPO pod with 100,000 annotations is refused by name, not walked: the rules say they could not judge it', async (t) => {
  const { server, ca, url } = await started(t);
  const pod = makeKpoPod({ suffix: 'wide' });
  (pod['metadata'] as Record<string, unknown>)['annotations'] = Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`team.example.com/a-${i}`, 'v']));
  const body = JSON.stringify(makeReview(makeRequest(pod, ALPHA)));
  const [mutated, health] = await Promise.all([call(`${url}/mutate`, { ca, body }), call(`${url}/healthz`, { ca })]);
  t.equal(mutated.status, 200, 'a valid AdmissionReview answer');
  const response = (mutated.body as { response: { allowed: boolean; patch?: string; status?: { message: string } } }).response;
  t.equal(response.allowed, false, 'a pod cannot escape the rules by growing a map');
  t.equal(response.patch, undefined);
  t.match(response.status?.message, /^Pod airflow\/export-action-log-wide: metadata\.annotations holds more than 10,000 entries, .*\(rule airflow-tasks-stay-put\)/);
  t.ok((response.status?.message.length ?? 0) < 2_000, 'the message does not grow with the map');
  t.equal(health.status, 200);
  t.equal(server.child.exitCode, null);
});

t.test('a body nested 2,000,000 levels deep is refused with a short 400 (JSON.parse alone would hold podgate half a second)', async (t) => {
  const { server, ca, url } = await started(t);
  const res = await call(`${url}/validate`, { ca, body: `${'['.repeat(2_000_000)}${']'.repeat(2_000_000)}` });
  t.equal(res.status, 400);
  t.same(res.body, { error: 'request body nests deeper than 10,010 levels; an API server sends at most 10,000' });
  t.equal((await call(`${url}/healthz`, { ca })).status, 200);
  t.equal(server.child.exitCode, null);
});

t.test('forty concurrent near-limit reviews: bodies past the in-flight budget are refused at once, memory stays under the limit', async (t) => {
  const { server, ca, url } = await started(t);
  const padding = 'x'.repeat(7.9 * 1024 * 1024);
  const pod = makePod({ name: 'big', namespace: 'airflow', spec: { containers: [{ name: 'c', image: 'i', env: [{ name: 'BLOB', value: padding }] }] } });
  const body = JSON.stringify(makeReview(makeRequest(pod)));
  const agent = new Agent({ keepAlive: false, maxSockets: 64 });
  t.teardown(() => { agent.destroy(); });
  const answers = await Promise.all(Array.from({ length: 40 }, () => call(`${url}/validate`, { ca, body, agent }).catch((error: unknown) => ({ status: -1, body: String(error), text: '' }))));
  const statuses = answers.map((answer) => answer.status);
  // -1: the connection was reset after the 503 (podgate closes it rather than read a body it refused).
  t.ok(statuses.every((status) => status === 200 || status === 503 || status === -1), `every answer is a decision, a 503, or the reset after one (${[...new Set(statuses)].join(', ')})`);
  t.ok(statuses.includes(200), 'some were decided');
  const shed = answers.find((answer) => answer.status === 503);
  t.match(shed?.body, { error: /^podgate is already reading or judging [\d,]+ bytes of reviews \(its budget is 16,777,216\); retry, or the webhook's failurePolicy applies$/ });
  t.equal((await call(`${url}/healthz`, { ca })).status, 200);
  const peak = peakRss(server.child.pid);
  t.ok(peak < MEMORY_LIMIT, `peak RSS ${Math.round(peak / 1048576)} MiB under the 256 MiB limit`);
});

t.test('a client that gives up mid-body gives its share of the in-flight budget back', async (t) => {
  const { ca, server, url } = await started(t, ['--max-inflight-bytes', '1000000']);
  const review = JSON.stringify(makeReview(makeRequest(makePod())));
  const quitter = tlsConnect({ host: '127.0.0.1', port: server.port, ca, servername: 'localhost' });
  quitter.on('error', () => undefined);
  await new Promise<void>((resolve) => quitter.once('secureConnect', () => { resolve(); }));
  // It announces the whole budget, sends a little, and goes away.
  quitter.write('POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{"apiVersion":');
  await waitFor('the budget taken', async () => (await call(`${url}/validate`, { ca, body: review })).status === 503);
  quitter.destroy();
  await waitFor('the budget given back', async () => (await call(`${url}/validate`, { ca, body: review })).status === 200, 10_000);
  t.pass('reviews are decided again once the quitter is gone');
});

t.test("connections that announce 8 MiB bodies and send nothing cannot keep out the API server's reviews: their uploads are cut for a client holding less", async (t) => {
  const { ca, server, url } = await started(t);
  const review = JSON.stringify(makeReview(makeRequest(makePod({ name: 'p', namespace: 'airflow' }))));
  // The squatter: another address (all of 127/8 is this machine), two connections, 8 MiB announced on each, nothing sent.
  const squat = (from = '127.0.0.2') => announce(t, server.port, ca, from, 8 * 1024 * 1024);
  const squatters = [(await squat()).closed, (await squat()).closed];
  const squatterAgent = new Agent({ localAddress: '127.0.0.2' });
  t.teardown(() => { squatterAgent.destroy(); });
  // The budget is full: the squatter's own next review is refused; it cannot cut its own uploads.
  await waitFor('the budget taken', async () => (await call(`${url}/validate`, { ca, body: review, agent: squatterAgent })).status === 503);

  const answers = [];
  for (let i = 0; i < 3; i += 1) answers.push(await call(`${url}/validate`, { ca, body: review }));
  t.same(answers.map((answer) => [answer.status, (answer.body as { response?: { allowed?: boolean } }).response?.allowed]), [[200, true], [200, true], [200, true]], 'reviews from another address are decided');
  const cut = await Promise.race([Promise.any(squatters), new Promise<boolean>((resolve) => setTimeout(() => { resolve(false); }, 5000))]);
  t.equal(cut, true, "a squatter's connection was closed");
  const metrics = await call(`https://localhost:${server.metricsPort}/metrics`, { ca });
  t.match(metrics.text, /podgate_http_rejected_total\{reason="evicted"\} 1\n/, 'one upload cut was enough to make room (8 MiB of 16 MiB freed), and it is counted');
  const logged = () => server.lines.find((line) => String(line['msg']).startsWith('cut an upload'));
  await waitFor('the log line', () => logged() !== undefined);
  t.match(logged(), { level: 40, client: '127.0.0.2' }, 'the address is logged');
  t.same(server.lines.filter((line) => Number(line['level']) >= 50), [], 'nothing logged as a fault');

  // A third address takes the 8 MiB left; the squatter, holding 8 MiB already, cannot cut it to take 8 more.
  const third = (await squat('127.0.0.3')).closed;
  const bigger = JSON.stringify(makeReview(makeRequest(makePod({ name: 'p', namespace: 'airflow', spec: { containers: [{ name: 'c', image: 'i', env: [{ name: 'X', value: 'x'.repeat(7 * 1024 * 1024) }] }] } }))));
  await waitFor('the third squatter holding its share', async () => (await call(`${url}/validate`, { ca, body: bigger, agent: squatterAgent }).catch(() => ({ status: -1 }))).status !== 200);
  t.equal(await Promise.race([third, new Promise<string>((resolve) => setTimeout(() => { resolve('open'); }, 500))]), 'open', 'a client holding less is never cut for one holding more');
});

t.test('an upload is cut only when the cuts make room: a newcomer that would not fit anyway is refused and nothing is cut', async (t) => {
  const { ca, server } = await started(t);
  const MiB = 1024 * 1024;
  // 16 MiB held: 4 MiB by one address, 2 x 6 MiB by another.
  const light = await announce(t, server.port, ca, '127.0.0.2', 4 * MiB);
  const heavy = [await announce(t, server.port, ca, '127.0.0.3', 6 * MiB), await announce(t, server.port, ca, '127.0.0.3', 6 * MiB)];
  // 8 MiB more: only the 12 MiB address holds more than the newcomer would, and cutting one of its uploads leaves 2 MiB short.
  const newcomer = await announce(t, server.port, ca, '127.0.0.4', 8 * MiB);
  await newcomer.closed;
  t.match(newcomer.text(), /^HTTP\/1\.1 503 [^]*podgate is already reading or judging 16,777,216 bytes/, 'the newcomer is refused');
  t.same(await Promise.all([light, ...heavy].map(({ closed }) => stillOpen(closed, 300))), [true, true, true], 'and no upload was cut for it');
  // A small review from another address: one cut of the heaviest makes room.
  const small = await announce(t, server.port, ca, '127.0.0.5', 5000);
  t.equal(await stillOpen(small.closed, 300), true, 'a small one is let in');
  t.same(await Promise.all(heavy.map(({ closed }) => stillOpen(closed, 300))).then((open) => open.filter((o) => !o).length), 1, 'by cutting one of the heaviest address\'s uploads');
});

t.test('a body sent to a path podgate does not serve counts against the budget too, and gives it back when answered', async (t) => {
  const { ca, server, url } = await started(t, ['--max-inflight-bytes', '1000000']);
  const review = JSON.stringify(makeReview(makeRequest(makePod())));
  const stray = tlsConnect({ host: '127.0.0.1', port: server.port, ca, servername: 'localhost' });
  stray.on('error', () => undefined);
  t.teardown(() => { stray.destroy(); });
  await new Promise<void>((resolve) => stray.once('secureConnect', () => { resolve(); }));
  const answered = new Promise<string>((resolve) => { let text = ''; stray.on('data', (chunk: Buffer) => { text += chunk.toString(); if (text.includes('no route')) resolve(text); }); });
  // Fastify reads the body of a request to an unknown route before it answers 404: the budget must see it.
  const body = '{"padding":"' + 'x'.repeat(999_000) + '"}';
  stray.write(`POST /nowhere HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 1000)}`);
  await waitFor('the budget taken', async () => (await call(`${url}/validate`, { ca, body: review })).status === 503);
  stray.write(body.slice(1000));
  t.match(await answered, /^HTTP\/1\.1 404 /, 'the stray request is answered 404 once its body is in');
  await waitFor('the budget given back', async () => (await call(`${url}/validate`, { ca, body: review })).status === 200, 10_000);
  t.pass('reviews are decided again once the stray body is answered');
});

t.test('slow clients are cut: a trickled body within the request deadline, a silent TLS handshake within the handshake deadline', async (t) => {
  const { ca, server } = await started(t);
  const closedWithin = (socket: { once(event: 'close', listener: () => void): unknown }, startedAt: number) =>
    new Promise<number>((resolve) => socket.once('close', () => { resolve(Date.now() - startedAt); }));

  const silentStart = Date.now();
  const silent = tcpConnect(server.port, '127.0.0.1'); // never says hello
  silent.on('error', () => undefined);
  const silentClosed = closedWithin(silent, silentStart);

  const trickleStart = Date.now();
  const trickle = tlsConnect({ host: '127.0.0.1', port: server.port, ca, servername: 'localhost' });
  trickle.on('error', () => undefined);
  await new Promise<void>((resolve) => trickle.once('secureConnect', () => { resolve(); }));
  trickle.write('POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n');
  const drip = setInterval(() => trickle.write('x'), 500);
  const trickleClosed = closedWithin(trickle, trickleStart);
  const [silentMs, trickleMs] = await Promise.all([silentClosed, trickleClosed]);
  clearInterval(drip);
  t.ok(silentMs < 15_000, `the silent handshake was dropped after ${silentMs} ms (deadline 5 s; Node's default is 120 s)`);
  t.ok(trickleMs < 25_000, `the trickled body was cut after ${trickleMs} ms (deadline 10 s; it used to stay open past a minute)`);
});

t.test('a log reader that stops reading adds no latency to admission', async (t) => {
  const { server, ca, url } = await started(t);
  server.child.stdout?.pause(); // the log collector stalls: the pipe fills (64 KiB), then stays full
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  t.teardown(() => { agent.destroy(); });
  // Every answer is a denial, so every one writes a log line at info (about 700 bytes).
  const denied = (i: number) => JSON.stringify(makeReview(makeRequest(makePod({ name: `small-${i}`, namespace: 'airflow', labels: { component: 'api-server' }, containers: [{ name: 'api-server', limits: { memory: '1Gi' } }] }))));
  const startedAt = Date.now();
  const count = 1500;
  for (let batch = 0; batch < count; batch += 50) {
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => call(`${url}/validate`, { ca, body: denied(batch + i), agent })));
    if (answers.some((answer) => answer.status !== 200)) t.fail(`an answer was not 200: ${answers.map((a) => a.status).join(',')}`);
  }
  const elapsed = Date.now() - startedAt;
  // A writer that waits on the full pipe (a second per 16 KiB flush) needs over 60 s for these; one that does not, a few.
  t.ok(elapsed < 30_000, `${count} logged denials answered in ${elapsed} ms with the log reader stalled`);
  server.child.stdout?.resume();
  await waitFor('the lines kept for the stalled reader', () => server.lines.filter((line) => line['msg'] === 'denied').length === count, 15_000);
  t.pass('every decision line arrived once the reader was back');
});

t.test('policy reloads: a file the YAML parser refuses is reported like any bad file; a busy directory cannot starve reloads', async (t) => {
  const policy = (floor: string) => `apiVersion: podgate.io/v1alpha1\nkind: Policy\nrules:\n  - name: floors\n    kind: resourceFloors\n    limits: { memory: ${floor} }\n`;
  const { server, ca, url, cwd } = await started(t, ['--config', 'conf/podgate.yaml'], { conf: { 'podgate.yaml': policy('1Gi') } });
  const ops = `https://localhost:${server.metricsPort}`;
  const aliases = ['apiVersion: podgate.io/v1alpha1', 'kind: Policy', 'a: &a [x, x]', ...Array.from({ length: 120 }, (_, i) => `b${i}: *a`), 'rules: []', ''].join('\n');
  await writeFile(join(cwd, 'conf', 'podgate.yaml'), aliases);
  await waitFor('the rejection', () => server.lines.some((line) => String(line['msg']).startsWith('policy file rejected')));
  t.match(server.lines.find((line) => String(line['msg']).startsWith('policy file rejected')), { level: 50, errors: [/\/podgate\.yaml:4:\d+ the YAML could not be expanded: .*at most 100 alias expansions/] });
  t.match((await call(`${ops}/readyz`, { ca })).body, { ready: true, checks: { policy: { ok: true, detail: /a newer file was rejected .*could not be expanded/ } } });
  const metrics = (await call(`${ops}/metrics`, { ca })).text;
  t.match(metrics, /podgate_policy_reloads_total\{result="failure"\} 1/);
  t.match(metrics, /podgate_policy_last_load_success 0/);

  // A neighbour written every 50 ms: the edit of podgate.yaml still takes effect.
  const busy = setInterval(() => { void writeFile(join(cwd, 'conf', 'neighbour.tmp'), String(Date.now())); }, 50);
  t.teardown(() => { clearInterval(busy); });
  await writeFile(join(cwd, 'conf', 'podgate.yaml'), policy('4Gi'));
  const review = JSON.stringify(makeReview(makeRequest(makePod({ containers: [{ name: 'c', limits: { memory: '2Gi' } }] }))));
  await waitFor('the 4Gi floor in force', async () => !((await call(`${url}/validate`, { ca, body: review })).body as { response: { allowed: boolean } }).response.allowed, 15_000);
  clearInterval(busy);
  t.pass('reloaded while the directory kept changing');
});

t.test('SIGHUP drains like SIGTERM', async (t) => {
  const { server } = await started(t);
  server.child.kill('SIGHUP');
  t.same(await server.exited, { code: 0, signal: null });
  t.ok(server.lines.some((line) => line['msg'] === 'stopped'), 'stopped in order');
  t.ok(server.lines.some((line) => line['signal'] === 'SIGHUP'));
});
