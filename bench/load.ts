// The load generator for `npm run bench`, in its own process so it does not
// share an event loop with the server it measures. Keep-alive connections over
// HTTPS with certificate verification, as the kube-apiserver calls a webhook.
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';

const [url = '', caPath = '', bodyPath = '', connections = '16', seconds = '4', rate = '0'] = process.argv.slice(2);
const target = new URL(url);
if (!['localhost', '127.0.0.1'].includes(target.hostname)) throw new Error('the benchmark only targets this machine');
const overallRate = Number(rate);
const result = await autocannon({
  url,
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: readFileSync(bodyPath, 'utf8'),
  connections: Number(connections),
  duration: Number(seconds),
  pipelining: 1,
  tlsOptions: { ca: readFileSync(caPath, 'utf8') },
  ...(overallRate > 0 ? { overallRate } : {}),
});
process.stdout.write(
  `${JSON.stringify({
    rps: result.requests.average,
    total: result.requests.total,
    p50: result.latency.p50,
    p90: result.latency.p90,
    p99: result.latency.p99,
    max: result.latency.max,
    errors: result.errors,
    timeouts: result.timeouts,
    non2xx: result.non2xx,
  })}\n`,
);
