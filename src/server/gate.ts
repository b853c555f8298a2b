import type { IncomingMessage, ServerResponse } from 'node:http';
import { EventLoopLag } from './lag.ts';
import { formatCount } from '../lib/format.ts';
import { Tally } from '../lib/tally.ts';

export interface GateOptions {
  /** The largest body accepted; a body of unknown length (chunked) is counted as this large. */
  readonly bodyLimit: number;
  /** Bytes of request bodies being received or decided at once. */
  readonly maxInflightBytes: number;
  /** Admission requests are shed while the event loop lags more than this (ms); 0 turns it off. */
  readonly maxEventLoopDelayMs: number;
  /** Told of every request the gate turned away. */
  readonly onShed: () => void;
  /** Told of every upload cut to make room for a lighter client's, with the address it came from. */
  readonly onEvict: (client: string) => void;
}

interface Held {
  readonly size: number;
  readonly response: ServerResponse;
  readonly client: string;
}

/** The paths whose requests are reviews (the API server appends `?timeout=…`). */
const ADMISSION_PATH = /^\/(?:mutate|validate)(?:[?#]|$)/;

/**
 * Load shedding in front of Fastify, on the raw request before a byte of its body is
 * read: a 503 at once while the event loop lags (admission paths only, so /healthz
 * keeps answering under load) or while the bodies already in flight fill the memory
 * budget (every path: a body to an unknown route is read too). The answer closes the
 * connection instead of reading the body it refused; the webhook's failurePolicy then
 * applies.
 *
 * Here rather than in a Fastify onRequest hook: a hook on the admission routes cost
 * about 6% of podgate's CPU per review in interleaved A/B rounds (bench/ab.ts), for
 * checks that need nothing Fastify knows. Fastify's serverFactory, which hands the
 * request over, is how its authors let a server see requests first.
 *
 * A request gives its bytes back when podgate has answered it (`release`). One whose
 * client went away mid-body, or whose route never calls release, is found by a sweep
 * each second: a listener per request would cost what the hook did.
 *
 * The budget is shared fairly between clients (by remote address). A body holds its
 * declared size from its headers on, so without this two connections that announce
 * 8 MiB and send nothing held the whole budget until the request deadline, and every
 * review the API server sent meanwhile was shed: with failurePolicy Ignore, every rule
 * off, for as long as the attacker liked, at no cost to it. Now, when a body does not
 * fit, the uploads still arriving from clients that hold more than the newcomer's would
 * then hold are cut, heaviest first, to make room; a client can only be refused by
 * clients holding less than it. The API server sends a few KiB per review, so whoever
 * fills the budget loses to it.
 */
export class AdmissionGate {
  readonly limit: number;
  readonly #options: GateOptions;
  readonly #lag: EventLoopLag | undefined;
  #bytes = 0;
  readonly #holding = new Map<IncomingMessage, Held>();
  /** Bytes held per client address. */
  readonly #clients = new Tally<string>();
  readonly #sweep: NodeJS.Timeout;

  constructor(options: GateOptions) {
    this.#options = options;
    this.limit = options.maxInflightBytes;
    // Sampled every 100 ms: podgate reacts within a tenth of a second, well inside the API server's timeout.
    this.#lag = options.maxEventLoopDelayMs > 0 ? new EventLoopLag(100) : undefined;
    this.#sweep = setInterval(() => {
      for (const [request, { response }] of this.#holding) if (request.destroyed || response.writableFinished) this.release(request);
    }, 1000);
    this.#sweep.unref();
  }

  /** Bytes held by requests in flight. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Whether `request` may go on to Fastify; if not, it has been answered 503. */
  admit(request: IncomingMessage, response: ServerResponse): boolean {
    // Without a sampler (maxEventLoopDelayMs 0) the lag reads 0, which never exceeds the bound.
    const lagMs = this.#lag?.ms ?? 0;
    if (lagMs > this.#options.maxEventLoopDelayMs && ADMISSION_PATH.test(request.url ?? '')) {
      return this.#shed(response, `podgate is overloaded (its event loop runs ${lagMs.toFixed(0)} ms late)`);
    }
    const size = this.#bodySize(request);
    if (size === 0) return true;
    const client = request.socket.remoteAddress ?? '';
    // One body alone may always take the whole budget, so no size is refused forever.
    if (this.#bytes > 0 && this.#bytes + size > this.limit && !this.#makeRoom(client, size)) {
      return this.#shed(response, `podgate is already reading or judging ${formatCount(this.#bytes)} bytes of reviews (its budget is ${formatCount(this.limit)})`);
    }
    this.#bytes += size;
    this.#clients.add(client, size);
    this.#holding.set(request, { size, response, client });
    return true;
  }

  /** Gives back what `request` holds, if anything (safe to call more than once). */
  release(request: IncomingMessage): void {
    const held = this.#holding.get(request);
    if (held === undefined) return;
    this.#bytes -= held.size;
    this.#clients.add(held.client, -held.size);
    this.#holding.delete(request);
  }

  /**
   * Cuts uploads still arriving from clients that hold more than `client` would with
   * `size` more, until `size` fits; false, cutting nothing, if it cannot. A body already
   * received is being judged and is let finish. The cuts are chosen first, on a copy of
   * what each client holds, so no upload is cut for a newcomer that is refused anyway.
   * One pass over the requests in flight per cut (bounded by the connection limit).
   */
  #makeRoom(client: string, size: number): boolean {
    const floor = this.#clients.get(client) + size;
    const holds = this.#clients.copy();
    const cuts = new Set<IncomingMessage>();
    let bytes = this.#bytes;
    while (bytes + size > this.limit) {
      const victim = this.#uploadToCut(client, floor, holds, cuts);
      if (victim === undefined) return false;
      cuts.add(victim.request);
      bytes -= victim.held.size;
      holds.add(victim.held.client, -victim.held.size);
    }
    for (const request of cuts) {
      const from = this.#holding.get(request)?.client ?? '';
      this.release(request);
      request.destroy();
      this.#options.onEvict(from);
    }
    return true;
  }

  /**
   * An upload still arriving, not yet chosen, from a client other than `client` that
   * holds more than `floor` (by `holds`): of the one holding the most, the largest.
   */
  #uploadToCut(client: string, floor: number, holds: Tally<string>, chosen: ReadonlySet<IncomingMessage>): { request: IncomingMessage; held: Held } | undefined {
    let victim: { request: IncomingMessage; held: Held } | undefined;
    let victimClientBytes = floor;
    for (const [request, held] of this.#holding) {
      if (held.client === client || request.complete || request.destroyed || chosen.has(request)) continue;
      const clientBytes = holds.get(held.client);
      if (clientBytes > victimClientBytes || (clientBytes === victimClientBytes && victim !== undefined && held.size > victim.held.size)) {
        victim = { request, held };
        victimClientBytes = clientBytes;
      }
    }
    return victim;
  }

  stop(): void {
    clearInterval(this.#sweep);
    this.#lag?.stop();
  }

  /** What the body will take: its Content-Length, capped at the limit; without one but chunked, the limit; otherwise none. */
  #bodySize(request: IncomingMessage): number {
    const declared = request.headers['content-length'];
    if (declared === undefined) return request.headers['transfer-encoding'] === undefined ? 0 : this.#options.bodyLimit;
    const length = Number(declared);
    return Number.isFinite(length) && length >= 0 ? Math.min(length, this.#options.bodyLimit) : this.#options.bodyLimit;
  }

  #shed(response: ServerResponse, error: string): false {
    this.#options.onShed();
    response.writeHead(503, { 'content-type': 'application/json; charset=utf-8', 'retry-after': '1', connection: 'close' });
    response.end(JSON.stringify({ error: `${error}; retry, or the webhook's failurePolicy applies` }));
    return false;
  }
}
