import type { Server, Socket } from 'node:net';
import { Tally } from '../lib/tally.ts';

export interface ConnectionLimitOptions {
  /** Open connections at most, TLS handshakes included. */
  readonly maxConnections: number;
  /** A connection that reads nothing for this long is closed (ms): past the keep-alive timeout, which closes idle ones after a response. */
  readonly silentTimeoutMs: number;
  /** A connection counts as idle once it has read nothing for this long (ms); only idle ones are closed to make room. */
  readonly idleAfterMs: number;
  /** Told of every connection closed to make room for a client holding fewer, with the address it came from. */
  readonly onEvict: (client: string) => void;
}

interface Tracked {
  readonly client: string;
  bytesRead: number;
  /** When it was last seen reading (ms, performance.now()). */
  activeAt: number;
}

/**
 * The connection limit, shared fairly between clients by remote address. With Node's
 * own `maxConnections`, whoever opened connections first kept them: 1,024 connections
 * that finished the TLS handshake and then said nothing were never closed (Node's
 * request deadlines start with a request), and every new connection the API server
 * opened was refused, so its reviews failed open, at no cost to the sender.
 *
 * Now a connection that reads nothing for `silentTimeoutMs` is closed, and when a new
 * one does not fit, an idle connection of the address holding the most is closed for
 * it, as long as that address holds more than the newcomer's would; otherwise the
 * newcomer is refused. A client is refused only when the connections are held by
 * clients holding fewer than it.
 *
 * Whether a connection is busy is read off its byte count once a second (and when one
 * must be chosen), not from a listener per request: it sees every raw connection,
 * handshakes included, at the cost of one 'close' listener each.
 */
export class ConnectionLimit {
  readonly #options: ConnectionLimitOptions;
  readonly #sockets = new Map<Socket, Tracked>();
  readonly #perClient = new Tally<string>();
  readonly #sweep: NodeJS.Timeout;

  constructor(options: ConnectionLimitOptions) {
    this.#options = options;
    this.#sweep = setInterval(() => { this.#closeSilent(performance.now()); }, 1000);
    this.#sweep.unref();
  }

  /** Counts every connection `server` accepts (the raw socket, before TLS). */
  watch(server: Server): void {
    server.on('connection', (socket: Socket) => { this.#accept(socket); });
  }

  stop(): void {
    clearInterval(this.#sweep);
  }

  #accept(socket: Socket): void {
    const client = socket.remoteAddress ?? '';
    if (this.#sockets.size >= this.#options.maxConnections && !this.#makeRoom(client)) {
      socket.destroy();
      return;
    }
    this.#sockets.set(socket, { client, bytesRead: socket.bytesRead, activeAt: performance.now() });
    this.#perClient.add(client, 1);
    socket.once('close', () => { this.#forget(socket); });
  }

  #forget(socket: Socket): void {
    const tracked = this.#sockets.get(socket);
    if (tracked === undefined) return;
    this.#sockets.delete(socket);
    this.#perClient.add(tracked.client, -1);
  }

  /** Closes one idle connection of the address holding the most, if it holds more than `client` would with one more. */
  #makeRoom(client: string): boolean {
    const now = performance.now();
    const floor = this.#perClient.get(client) + 1;
    let victim: Socket | undefined;
    let victimCount = floor;
    let victimActiveAt = Infinity;
    for (const [socket, tracked] of this.#sockets) {
      if (tracked.client === client) continue;
      this.#observe(socket, tracked, now);
      const count = this.#perClient.get(tracked.client);
      if (now - tracked.activeAt < this.#options.idleAfterMs) continue;
      // Of the address with the most, the connection idle the longest.
      if (count > victimCount || (count === victimCount && victim !== undefined && tracked.activeAt < victimActiveAt)) {
        victim = socket;
        victimCount = count;
        victimActiveAt = tracked.activeAt;
      }
    }
    if (victim === undefined) return false;
    const from = this.#sockets.get(victim)?.client ?? '';
    this.#forget(victim);
    victim.destroy();
    this.#options.onEvict(from);
    return true;
  }

  #closeSilent(now: number): void {
    for (const [socket, tracked] of this.#sockets) {
      this.#observe(socket, tracked, now);
      if (now - tracked.activeAt >= this.#options.silentTimeoutMs) {
        this.#forget(socket);
        socket.destroy();
      }
    }
  }

  /** A connection that read something since it was last looked at was active just now. */
  #observe(socket: Socket, tracked: Tracked, now: number): void {
    if (socket.bytesRead !== tracked.bytesRead) {
      tracked.bytesRead = socket.bytesRead;
      tracked.activeAt = now;
    }
  }
}
