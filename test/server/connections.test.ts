import t from 'tap';
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { Agent } from 'node:https';
import { pino } from 'pino';
import { call, startServer } from '../helpers/https.ts';
import { fakePolicy } from '../helpers/fake-rules.ts';
import { makePod, makeRequest, makeReview } from '../helpers/builders.ts';
import { Metrics } from '../../src/server/metrics.ts';
import { waitFor } from '../helpers/wait.ts';

const policy = fakePolicy({ rules: [{ name: 'needs-team', kind: 'requireLabel', key: 'team', match: { namespaces: ['strict'] } }] });
const review = JSON.stringify(makeReview(makeRequest(makePod({ name: 'p', namespace: 'airflow' }))));
const portOf = (url: string) => Number(new URL(url).port);

/** A TLS connection from `from` (all of 127/8 is this machine) that finishes its handshake and says nothing; resolves once connected. */
async function silent(t: { teardown: (fn: () => void) => void }, url: string, ca: string, from: string): Promise<{ socket: TLSSocket; closed: Promise<true> }> {
  const socket = tlsConnect({ socket: tcpConnect({ host: '127.0.0.1', port: portOf(url), localAddress: from }), ca, servername: 'localhost' });
  socket.on('error', () => undefined);
  t.teardown(() => { socket.destroy(); });
  const closed = new Promise<true>((resolve) => socket.once('close', () => { resolve(true); }));
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', () => { resolve(); });
    socket.once('close', () => { reject(new Error('closed before the handshake')); });
  });
  return { socket, closed };
}

const stillOpen = (closed: Promise<true>, ms: number) => Promise.race([closed.then(() => false), new Promise<boolean>((resolve) => setTimeout(() => { resolve(true); }, ms))]);

t.test('connections held silent by one address cannot lock the API server out: an idle one of theirs is closed for a newcomer holding fewer', async (t) => {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => { lines.push(JSON.parse(line) as Record<string, unknown>); } });
  const metrics = new Metrics();
  const server = await startServer(policy, { logger, metrics, maxConnections: 6 });
  t.teardown(() => server.close());
  const squatters = [];
  for (let i = 0; i < 6; i += 1) squatters.push(await silent(t, server.url, server.ca, '127.0.0.2'));
  // One more from the same address does not fit, and it cannot close its own.
  const refused = tlsConnect({ socket: tcpConnect({ host: '127.0.0.1', port: portOf(server.url), localAddress: '127.0.0.2' }), ca: server.ca, servername: 'localhost' });
  refused.on('error', () => undefined);
  t.teardown(() => { refused.destroy(); });
  await new Promise<void>((resolve) => refused.once('close', () => { resolve(); }));
  t.pass('a seventh connection from the address holding all six is refused');

  // Once they have been idle a second or two (seen by the once-a-second look at byte counts), the API server's address gets through, again and again (new connections each time).
  await new Promise((resolve) => setTimeout(resolve, 2500));
  const statuses = [];
  for (let i = 0; i < 3; i += 1) statuses.push((await call(`${server.url}/validate`, { ca: server.ca, body: review })).status);
  t.same(statuses, [200, 200, 200], 'reviews from another address are answered');
  const open = await Promise.all(squatters.map(({ closed }) => stillOpen(closed, 50)));
  t.ok(open.filter((o) => !o).length >= 1 && open.filter((o) => !o).length <= 3, `${open.filter((o) => !o).length} of the squatter's connections closed: one per connection the newcomer needed at most`);
  t.match(await metrics.registry.getSingleMetricAsString('podgate_http_rejected_total'), /reason="evicted"\} [1-3]$/m);
  t.match(lines.find((line) => String(line['msg']).startsWith('cut a connection')), { level: 40, client: '127.0.0.2' }, 'the address is logged');
});

t.test('a client holding fewer connections is never closed for one holding more, nor is the one asking', async (t) => {
  const server = await startServer(policy, { maxConnections: 4 });
  t.teardown(() => server.close());
  const light = await silent(t, server.url, server.ca, '127.0.0.3');
  const heavy = [await silent(t, server.url, server.ca, '127.0.0.2'), await silent(t, server.url, server.ca, '127.0.0.2')];
  // The API server's address, with a keep-alive connection it keeps using.
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => { agent.destroy(); });
  t.equal((await call(`${server.url}/validate`, { ca: server.ca, body: review, agent })).status, 200);
  await new Promise((resolve) => setTimeout(resolve, 2500));
  // Full (4). The heavy address asks for more: nobody holds more than it, so it is refused.
  const more = tlsConnect({ socket: tcpConnect({ host: '127.0.0.1', port: portOf(server.url), localAddress: '127.0.0.2' }), ca: server.ca, servername: 'localhost' });
  more.on('error', () => undefined);
  t.teardown(() => { more.destroy(); });
  await new Promise<void>((resolve) => more.once('close', () => { resolve(); }));
  t.equal(await stillOpen(light.closed, 50), true, 'the lighter address keeps its connection');
  t.same(await Promise.all(heavy.map(({ closed }) => stillOpen(closed, 50))), [true, true], 'and the heavy one keeps its own');
  t.equal((await call(`${server.url}/validate`, { ca: server.ca, body: review, agent })).status, 200, 'the keep-alive connection still serves');
});

t.test('a connection that never sends a request is closed after the silent timeout; one in use is not', async (t) => {
  const server = await startServer(policy, { silentConnectionTimeoutMs: 1500 });
  t.teardown(() => server.close());
  const quiet = await silent(t, server.url, server.ca, '127.0.0.2');
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => { agent.destroy(); });
  let busySocketClosed = false;
  agent.on('free', (socket: Socket) => { socket.once('close', () => { busySocketClosed = true; }); });
  await waitFor('the silent connection closed', () => quiet.closed.then(() => true), 10_000);
  // A connection used every 300 ms for as long outlives it.
  for (let i = 0; i < 10; i += 1) {
    t.equal((await call(`${server.url}/validate`, { ca: server.ca, body: review, agent })).status, 200);
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  t.equal(busySocketClosed, false, 'the connection in use was kept');
});
