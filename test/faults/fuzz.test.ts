import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Agent } from 'node:https';
import { call } from '../helpers/https.ts';
import { startProcess } from '../helpers/process.ts';
import { makeController, makePod, makeRequest, makeReview } from '../helpers/builders.ts';
import { makeKpoPod } from '../helpers/kpo.ts';
import { readAdmissionReview } from '../../src/admission/review.ts';
import { decide } from '../../src/engine/decide.ts';
import { applyPatchCopying } from '../../src/lib/patch.ts';
import { EMPTY_CLUSTER } from '../../src/policy/cluster.ts';
import { compilePolicy } from '../../src/policy/registry.ts';
import { readPolicyFile } from '../../src/config/load.ts';
import { DEFAULT_POLICY_PATH } from '../../src/cli/serve.ts';

/** A small seeded PRNG (mulberry32): the same cases on every run, so a failure can be replayed. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const random = prng(20261123);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
const STRINGS = ['', 'x', '__proto__', 'constructor', 'prototype', '💥🚀', 'تجربة', '\u0000', '\ud800', 'a'.repeat(300), '1 Gi', '2 cores', '1.1.1', 'Mi', '-5', 'NaN', '9'.repeat(40)];

function randomValue(depth: number): unknown {
  const roll = random();
  if (depth <= 0 || roll < 0.3) return pick<unknown>([null, true, false, 0, -1, 1e308, 3.14, ...STRINGS]);
  if (roll < 0.6) return Array.from({ length: Math.floor(random() * 4) }, () => randomValue(depth - 1));
  const object: Record<string, unknown> = {};
  for (let i = 0; i < Math.floor(random() * 4); i += 1) object[pick(STRINGS.concat(['metadata', 'labels', 'spec', 'containers', 'resources', 'limits', 'nodeName', 'uid', 'kind']))] = randomValue(depth - 1);
  return object;
}

/** Replaces one random place in a JSON value with something of another type. */
function mutate(value: unknown): unknown {
  if (value === null || typeof value !== 'object' || random() < 0.15) return randomValue(3);
  if (Array.isArray(value)) {
    if (value.length === 0) return [randomValue(2)];
    const copy: unknown[] = [...(value as unknown[])];
    const index = Math.floor(random() * copy.length);
    copy[index] = mutate(copy[index]);
    return copy;
  }
  const keys = Object.keys(value);
  const copy: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  if (keys.length === 0 || random() < 0.1) copy[pick(STRINGS)] = randomValue(2);
  else {
    const key = pick(keys);
    copy[key] = mutate(copy[key]);
  }
  return copy;
}

function seeds(): unknown[] {
  return [
    makeReview(makeRequest(makePod({ containers: [{ name: 'api-server', limits: { memory: '1Gi' } }], labels: { component: 'api-server' } }))),
    makeReview(makeRequest(makeController('Deployment', 'airflow-api-server', { labels: { component: 'api-server' }, containers: [{ name: 'api-server', requests: { cpu: '500m' } }] }))),
    makeReview(makeRequest(makeKpoPod(), { username: 'system:serviceaccount:airflow-prod:airflow-worker' })),
    makeReview(makeRequest(makeKpoPod(), { operation: 'DELETE', username: 'system:serviceaccount:airflow-alpha:w' })),
    makeReview(makeRequest(makePod({ spec: { nodeName: 'n1', affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['n1'] }] }] } } } } }))),
  ];
}

function bodies(): string[] {
  const out: string[] = [];
  const base = seeds();
  for (let i = 0; i < 2500; i += 1) {
    const seed = pick(base) as { request: Record<string, unknown> };
    // Half the time keep the envelope and break the reviewed object: that reaches the rules.
    const field = seed.request['object'] === undefined ? 'oldObject' : 'object';
    out.push(JSON.stringify(i % 2 === 0 ? mutate(seed) : { ...seed, request: { ...seed.request, [field]: mutate(mutate(seed.request[field])) } }));
  }
  for (let i = 0; i < 300; i += 1) out.push(JSON.stringify(randomValue(6)));
  out.push(`${'['.repeat(100_000)}${']'.repeat(100_000)}`, `{"a":${'{"a":'.repeat(5_000)}1${'}'.repeat(5_001)}`);
  out.push(JSON.stringify({ ...(base[0] as object), pad: Array.from({ length: 200_000 }, (_, i) => i) }));
  out.push(JSON.stringify({ ...(base[0] as object), pad: 'x'.repeat(2_000_000) }));
  out.push('{"__proto__": {"polluted": true}, "constructor": {"prototype": {"polluted": true}}}');
  out.push(JSON.stringify(base[2]).replace('"labels":{', '"labels":{"__proto__":"x","constructor":"y",'));
  out.push(JSON.stringify(base[0]).slice(0, 200), 'not json at all', '\u0000\u0001\u0002', '');
  return out;
}

async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? '0') * 1024;
}

t.test('thousands of generated and mutated reviews: each answer is an AdmissionReview or a 4xx JSON error; the process lives; memory stays bounded', async (t) => {
  const cwd = t.testdir();
  const server = await startProcess([], cwd);
  t.teardown(() => server.child.kill('SIGTERM'));
  const ca = await readFile(join(cwd, 'certs', 'ca.crt'), 'utf8');
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  t.teardown(() => { agent.destroy(); });

  const cases = bodies();
  const outcomes = new Map<string, number>();
  const bad: string[] = [];
  for (const [index, body] of cases.entries()) {
    const webhook = index % 2 === 0 ? 'validate' : 'mutate';
    const res = await call(`https://localhost:${server.port}/${webhook}`, { ca, body, agent });
    let sent: unknown;
    try {
      sent = JSON.parse(body);
    } catch {
      sent = undefined;
    }
    const uid = (sent as { request?: { uid?: unknown } } | undefined)?.request?.uid;
    const answer = res.body as { apiVersion?: unknown; kind?: unknown; response?: { uid?: unknown; allowed?: unknown }; error?: unknown } | undefined;
    const isReview = res.status === 200 && answer?.kind === 'AdmissionReview' && typeof answer.response?.allowed === 'boolean' && answer.response.uid === uid;
    const isClientError = res.status >= 400 && res.status < 500 && typeof answer?.error === 'string';
    if (!isReview && !isClientError) bad.push(`case ${index}: HTTP ${res.status} ${res.text.slice(0, 200)}`);
    outcomes.set(String(res.status), (outcomes.get(String(res.status)) ?? 0) + 1);
  }
  t.same(bad, [], `every answer well-formed (${[...outcomes].map(([s, n]) => `${n}×${s}`).join(', ')})`);
  t.ok((outcomes.get('200') ?? 0) > 500, 'plenty of mutated reviews were still reviews and got decisions');
  t.ok((outcomes.get('400') ?? 0) > 500, 'plenty were refused as malformed');
  t.equal(server.child.exitCode, null, 'the process is alive');
  t.equal((await call(`https://localhost:${server.port}/healthz`, { ca })).status, 200);
  const rss = await rssOf(server.child.pid ?? 0);
  t.ok(rss < 400 * 1024 * 1024, `RSS after ${cases.length} cases: ${Math.round(rss / 1024 / 1024)} MiB`);
  t.notOk(server.lines.some((line) => (line['level'] as number) >= 50), 'no errors logged');
});

t.test("the same reviews through podgate's own pipeline in this process (envelope, both webhooks, the patch applied) leave Object.prototype untouched", async (t) => {
  const loaded = await readPolicyFile(DEFAULT_POLICY_PATH, compilePolicy);
  if (!loaded.ok) throw new Error('the sample policy should load');
  let decided = 0;
  for (const body of bodies()) {
    const parsed = readAdmissionReview(body); // the server's own reading: scan, JSON.parse, envelope
    if (!parsed.ok) continue;
    const mutation = decide('mutate', parsed.review.request, loaded.policy, EMPTY_CLUSTER, parsed.oversized);
    const object = mutation.allowed && mutation.patch.length > 0 ? applyPatchCopying(parsed.review.request.object, mutation.patch) : parsed.review.request.object;
    decide('validate', { ...parsed.review.request, object }, loaded.policy, EMPTY_CLUSTER, parsed.oversized);
    decided += 1;
  }
  t.ok(decided > 500, `${decided} reviews decided`);
  const probe: Record<string, unknown> = {};
  t.equal(probe['polluted'], undefined, 'no prototype pollution');
  t.equal(Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted'), false);
});
