import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

// `npm start` under a supervisor: the supervisor signals npm, and the signal must reach the server
// (before, npm's shell took it and left `node … serve` running, orphaned).
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

t.test('SIGTERM to npm start stops the server it started, cleanly', async (t) => {
  const npmCli = process.env['npm_execpath'];
  const [command, prefix] = npmCli?.endsWith('.js') ? [process.execPath, [npmCli]] : ['npm', []];
  const env: NodeJS.ProcessEnv = { ...process.env, PODGATE_CONFIG: '', KUBECONFIG: '/nonexistent/kubeconfig' };
  delete env['KUBERNETES_SERVICE_HOST'];
  const npm = spawn(command, [...prefix, 'start', '--silent', '--', '--offline', '--port', '0', '--metrics-port', '0', '--host', '127.0.0.1', '--log-format', 'json', '--certs-dir', t.testdir()], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  npm.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  const npmExited = new Promise((resolve) => npm.once('exit', resolve));
  for (let waited = 0; !out.includes('podgate listening'); waited += 100) {
    if (waited > 60_000) throw new Error(`npm start did not listen: ${out}`);
    await sleep(100);
  }
  const children = readFileSync(`/proc/${String(npm.pid)}/task/${String(npm.pid)}/children`, 'utf8').trim().split(/\s+/).map(Number);
  t.equal(children.length, 1, 'npm runs one process');
  const server = children[0] ?? 0;
  t.match(readFileSync(`/proc/${String(server)}/cmdline`, 'utf8').replaceAll('\0', ' '), /src\/cli\/main\.ts serve/, 'and it is the server itself, not a shell around it');
  npm.kill('SIGTERM');
  await npmExited;
  for (let waited = 0; existsSync(`/proc/${String(server)}`) && waited < 10_000; waited += 100) await sleep(100);
  t.notOk(existsSync(`/proc/${String(server)}`), 'the server is gone too: nothing orphaned');
  t.match(out, /"signal":"SIGTERM"[^\n]*stopping: no new connections/, 'it drained as it does on a SIGTERM of its own');
});
