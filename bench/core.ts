// `node bench/core.ts [reviews]`: what the pure core costs per review in-process, with no HTTP,
// TLS or Fastify around it: the envelope check and decide() for the bench's KPO pod review under
// the sample policy (the server's figure in `npm run bench` adds the shell around this).
import { decide } from '../src/engine/decide.ts';
import { readPolicyFile } from '../src/config/load.ts';
import { compilePolicy } from '../src/policy/registry.ts';
import { DEFAULT_POLICY_PATH } from '../src/cli/serve.ts';
import { parseAdmissionReview, type AdmissionRequest } from '../src/admission/review.ts';
import { EMPTY_CLUSTER } from '../src/policy/cluster.ts';
import { staticKpoPods } from '../src/kube/kpoIndex.ts';
import { makeRequest, makeReview } from '../test/helpers/builders.ts';
import { makeKpoPod } from '../test/helpers/kpo.ts';

const loaded = await readPolicyFile(DEFAULT_POLICY_PATH, compilePolicy);
if (!loaded.ok) throw new Error(loaded.errors.join('\n'));
const user = { username: 'system:serviceaccount:airflow-prod:airflow-worker', groups: ['system:serviceaccounts', 'system:serviceaccounts:airflow-prod'] };
const pod = makeKpoPod({ dagId: 'etl-daily', taskId: 'export', runId: 'scheduled__2026-11-23T00:00:00+00:00', operatorLabels: { 'podgate.io/environment': 'production' } });
const body = JSON.stringify(makeReview(makeRequest(pod, user)));
const cluster = { ...EMPTY_CLUSTER, kpoPods: staticKpoPods([]) }; // a synced pod index with no other pod of the task
const count = Number(process.argv[2] ?? '300000');
// Parsed bodies, reused round-robin: JSON.parse is the same for any webhook and not what this weighs.
const reviews: unknown[] = Array.from({ length: 1000 }, (): unknown => JSON.parse(body));
const requests = reviews.map((review) => {
  const parsed = parseAdmissionReview(review);
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.review.request;
});
const microseconds = (run: (i: number) => void) => {
  for (let i = 0; i < 20_000; i += 1) run(i); // warm-up: JIT
  const started = performance.now();
  for (let i = 0; i < count; i += 1) run(i);
  return ((performance.now() - started) * 1000) / count;
};
for (const phase of ['mutate', 'validate'] as const) {
  const withEnvelope = microseconds((i) => {
    const parsed = parseAdmissionReview(reviews[i % reviews.length]);
    if (parsed.ok) decide(phase, parsed.review.request, loaded.policy, cluster);
  });
  const decideOnly = microseconds((i) => decide(phase, requests[i % requests.length] as AdmissionRequest, loaded.policy, cluster));
  process.stdout.write(`${phase}: envelope check + decide ${withEnvelope.toFixed(2)} us per review; decide alone ${decideOnly.toFixed(2)} us (${count} reviews)\n`);
}
