import { Agent } from 'node:https';
import { call, type HttpsResponse } from './https.ts';

export interface LoadResult {
  readonly sent: number;
  readonly responses: HttpsResponse[];
  readonly errors: { code: string; message: string }[];
}

/**
 * Sends requests from `concurrency` keep-alive connections until `stop()` says so
 * (bounded by `maxRequests` and `maxMs` whatever happens), like the API server
 * calling a webhook. Only loopback addresses are ever targeted.
 */
export async function runLoad(options: {
  url: string;
  ca: string | (() => string);
  body: () => string;
  concurrency: number;
  stop: () => boolean;
  maxRequests?: number;
  maxMs?: number;
}): Promise<LoadResult> {
  const target = new URL(options.url);
  if (!['localhost', '127.0.0.1', '[::1]'].includes(target.hostname)) throw new Error('load tests only target this machine');
  const deadline = Date.now() + (options.maxMs ?? 30_000);
  const maxRequests = options.maxRequests ?? 50_000;
  const responses: HttpsResponse[] = [];
  const errors: { code: string; message: string }[] = [];
  let sent = 0;
  const worker = async (): Promise<void> => {
    let agent = new Agent({ keepAlive: true, maxSockets: 1 });
    let ca = typeof options.ca === 'function' ? options.ca() : options.ca;
    while (!options.stop() && Date.now() < deadline && sent < maxRequests) {
      sent += 1;
      try {
        responses.push(await call(options.url, { ca, body: options.body(), agent }));
      } catch (error) {
        const code = error instanceof Error && 'code' in error ? String(error.code) : 'UNKNOWN';
        errors.push({ code, message: error instanceof Error ? error.message : String(error) });
        // A fresh connection (and, for a rotation, a fresh trust anchor) for the next request.
        agent.destroy();
        agent = new Agent({ keepAlive: true, maxSockets: 1 });
        ca = typeof options.ca === 'function' ? options.ca() : options.ca;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }
    agent.destroy();
  };
  await Promise.all(Array.from({ length: options.concurrency }, () => worker()));
  return { sent, responses, errors };
}
