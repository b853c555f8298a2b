// Open-loop load at a fixed rate for `npm run bench`: requests are sent on a
// schedule (not when the previous answer arrives), and each latency is counted
// from when the request was due, so a stall shows up in the percentiles instead
// of slowing the sender (no coordinated omission). Microsecond resolution.
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';

const [url = '', caPath = '', bodyPath = '', rate = '1000', seconds = '4', connections = '16'] = process.argv.slice(2);
const target = new URL(url);
if (!['localhost', '127.0.0.1'].includes(target.hostname)) throw new Error('the benchmark only targets this machine');
const body = readFileSync(bodyPath);
const agent = new Agent({ keepAlive: true, maxSockets: Number(connections), ca: readFileSync(caPath, 'utf8') });
const intervalNs = 1e9 / Number(rate);
const total = Math.round(Number(rate) * Number(seconds));
const latenciesUs: number[] = [];
let errors = 0;
let sent = 0;
let start = process.hrtime.bigint();

function send(dueNs: bigint): Promise<void> {
  return new Promise((resolve) => {
    const req = request(
      { hostname: target.hostname, port: target.port, path: target.pathname, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': body.length } },
      (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode === 200) latenciesUs.push(Number(process.hrtime.bigint() - dueNs) / 1000);
          else errors += 1;
          resolve();
        });
      },
    );
    req.on('error', () => {
      errors += 1;
      resolve();
    });
    req.end(body);
  });
}

// Open every connection (TLS handshakes) and warm both ends up before the clock starts.
for (let round = 0; round < 20; round += 1) await Promise.all(Array.from({ length: Number(connections) }, () => send(process.hrtime.bigint())));
latenciesUs.length = 0;
errors = 0;
const pending: Promise<void>[] = [];
start = process.hrtime.bigint();
await new Promise<void>((resolve) => {
  const tick = () => {
    const elapsed = Number(process.hrtime.bigint() - start);
    while (sent < total && sent * intervalNs <= elapsed) {
      pending.push(send(start + BigInt(Math.round(sent * intervalNs))));
      sent += 1;
    }
    if (sent < total) setImmediate(tick);
    else resolve();
  };
  tick();
});
await Promise.all(pending);
agent.destroy();
latenciesUs.sort((a, b) => a - b);
const at = (q: number) => latenciesUs[Math.min(latenciesUs.length - 1, Math.floor(q * latenciesUs.length))] ?? 0;
const seconds_ = Number(process.hrtime.bigint() - start) / 1e9;
process.stdout.write(`${JSON.stringify({ rps: latenciesUs.length / seconds_, p50: at(0.5) / 1000, p90: at(0.9) / 1000, p99: at(0.99) / 1000, max: at(1) / 1000, errors })}\n`);
