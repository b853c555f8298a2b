// Starts `podgate serve` with its stdout on a pipe, sends it traffic (so it logs)
// without reading that pipe, prints its pid and exits: what happens to a
// replica whose log collector died. Used by serve.test.ts.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { call } from './https.ts';
import { makePod, makeRequest, makeReview } from './builders.ts';
import { MAIN } from './process.ts';

const [cwd = ''] = process.argv.slice(2);
const child = spawn(process.execPath, [MAIN, 'serve', '--offline', '--port', '0', '--host', '127.0.0.1', '--log-format', 'json', '--certs-dir', join(cwd, 'certs')], { cwd, stdio: ['ignore', 'pipe', 'ignore'] });
let seen = '';
const onData = (chunk: Buffer) => {
  seen += chunk.toString();
  const port = /"port":(\d+)[^\n]*podgate listening/.exec(seen)?.[1];
  if (port === undefined) return;
  child.stdout.off('data', onData);
  child.stdout.destroy(); // the log reader is gone: podgate's next writes meet a closed pipe
  void (async () => {
    const ca = readFileSync(join(cwd, 'certs', 'ca.crt'), 'utf8');
    for (let i = 0; i < 300; i += 1) await call(`https://localhost:${port}/validate`, { ca, body: JSON.stringify(makeReview(makeRequest(makePod({ name: `p${i}` })))) });
    process.stdout.write(`${String(child.pid)}\n`);
    process.exit(0);
  })();
};
child.stdout.on('data', onData);
