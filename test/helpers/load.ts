import { Agent } from 'node:https';
import { performance } from 'node:perf_hooks';
import { call, type HttpsResponse } from './https.ts';

/** A response with when its request left and its answer came back (performance.now() ms). */
export interface TimedResponse extends HttpsResponse {
  readonly sentAt: number;
  readonly receivedAt: number;
}

export interface LoadResult {
  readonly sent: number;
  /**
   * In the order the answers were read here. Answers on different connections
   * can be read in another order than the server wrote them, so an ordering
   * claim across connections compares `sentAt` with `receivedAt` instead.
   */
  readonly responses: TimedResponse[];
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
  const responses: TimedResponse[] = [];
  const errors: { code: string; message: string }[] = [];
  let sent = 0;
  const worker = async (): Promise<void> => {
    let agent = new Agent({ keepAlive: true, maxSockets: 1 });
    let ca = typeof options.ca === 'function' ? options.ca() : options.ca;
    while (!options.stop() && Date.now() < deadline && sent < maxRequests) {
      sent += 1;
      const sentAt = performance.now();
      try {
        const response = await call(options.url, { ca, body: options.body(), agent });
        responses.push({ ...response, sentAt, receivedAt: performance.now() });
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
