import { constants, fstatSync, openSync } from 'node:fs';
import { pino, type Logger } from 'pino';
import { LogLines } from './logLines.ts';

/**
 * JSON lines for machines (the default in a container); human-readable when a
 * person runs podgate in a terminal. What is logged is chosen field by field
 * (never a reviewed object, a header or a key), so no redaction pass runs on
 * the hot path.
 *
 * JSON lines are buffered and written 16 KiB at a time (and every second, and
 * at exit): one write per admission decision halved podgate's throughput. See
 * LogLines for why not pino.destination.
 */
export function createLogger(options: { readonly level?: string; readonly pretty?: boolean } = {}): Logger {
  const level = options.level ?? process.env['LOG_LEVEL'] ?? 'info';
  const base = { service: 'podgate' };
  if (options.pretty ?? process.stdout.isTTY) {
    return pino({ level, base, transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' } } });
  }
  const destination = new LogLines({ fd: nonBlockingStdout(), flushBytes: 16 * 1024, base });
  setInterval(() => { destination.flush(); }, 1000).unref();
  process.once('exit', () => { destination.flushAtExit(); });
  return pino({ level, base }, destination);
}

/**
 * A descriptor of stdout whose writes never wait, so a log collector that stops
 * reading cannot stall admission: LogLines keeps what a full pipe refuses.
 * - A pipe (a container's stdout): opened again through /proc, which gives a
 *   description of our own that can be non-blocking without changing fd 1 for the
 *   other processes that share it (Linux).
 * - A socket (systemd's journal, a parent's stdio pipe): /proc cannot reopen it; Node's
 *   own stdout stream, once created, makes it non-blocking (libuv), as for any Node
 *   program that prints.
 * - A file or a terminal: written as it is (a write there does not wait on a reader).
 */
function nonBlockingStdout(): number {
  try {
    const stat = fstatSync(1);
    if (stat.isFIFO()) return openSync('/proc/self/fd/1', constants.O_WRONLY | constants.O_NONBLOCK);
    // Creating Node's stream is what makes the socket non-blocking; its errors (EPIPE) must not crash podgate.
    if (stat.isSocket()) process.stdout.on('error', () => undefined);
  } catch {
    // no /proc: the plain descriptor
  }
  return 1;
}
