import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

/** The test's environment without anything that would point podgate at a real cluster or policy. */
function isolatedEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PODGATE_CONFIG: '', KUBECONFIG: '/nonexistent/kubeconfig' };
  delete env['KUBERNETES_SERVICE_HOST'];
  return { ...env, ...extra };
}

export interface ServerProcess {
  readonly child: ChildProcess;
  readonly port: number;
  /** The operations port: /metrics and detailed /readyz. */
  readonly metricsPort: number;
  /** Every JSON log line so far. */
  readonly lines: Record<string, unknown>[];
  readonly stderr: () => string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `podgate serve` as a real process (the Node 24 running the tests), resolving once it listens. */
export function startProcess(args: readonly string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<ServerProcess> {
  const child = spawn(process.execPath, [MAIN, 'serve', '--port', '0', '--metrics-port', '0', '--host', '127.0.0.1', '--log-format', 'json', ...args], {
    cwd,
    env: isolatedEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Record<string, unknown>[] = [];
  let stderr = '';
  let buffered = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => { resolve({ code, signal }); }));
  return new Promise((resolve, reject) => {
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const parts = buffered.split('\n');
      buffered = parts.pop() ?? '';
      for (const part of parts) {
        if (part.trim() === '') continue;
        const line = JSON.parse(part) as Record<string, unknown>;
        lines.push(line);
        if (typeof line['port'] === 'number' && typeof line['metricsPort'] === 'number' && String(line['msg']).startsWith('podgate listening')) {
          resolve({ child, port: line['port'], metricsPort: line['metricsPort'], lines, stderr: () => stderr, exited });
        }
      }
    });
    void exited.then(({ code }) => { reject(new Error(`podgate exited (${String(code)}) before listening: ${stderr}`)); });
  });
}

/** Runs a podgate command to completion and returns its exit code and output. */
export function runCommand(args: readonly string[], cwd: string, input?: string, env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [MAIN, ...args], { cwd, env: { ...isolatedEnv(), ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  child.stdin.end(input);
  return new Promise((resolve) => child.on('close', (code) => { resolve({ code, stdout, stderr }); }));
}
