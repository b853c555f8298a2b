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
  const destination = new LogLines({ fd: 1, flushBytes: 16 * 1024, base });
  setInterval(() => { destination.flush(); }, 1000).unref();
  process.once('exit', () => { destination.flush(); });
  return pino({ level, base }, destination);
}
