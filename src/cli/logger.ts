import { pino, type Logger } from 'pino';

/**
 * JSON lines for machines (the default in a container); human-readable when a
 * person runs podgate in a terminal. What is logged is chosen field by field
 * (never a reviewed object, a header or a key), so no redaction pass runs on
 * the hot path.
 *
 * JSON lines are buffered and written 4 KiB at a time (and every second): one
 * write per admission decision halved podgate's throughput. Writes stay
 * synchronous: an asynchronous writer left a stopping podgate hanging on a
 * stdout whose reader had gone.
 */
export function createLogger(options: { readonly level?: string; readonly pretty?: boolean } = {}): Logger {
  const level = options.level ?? process.env['LOG_LEVEL'] ?? 'info';
  if (options.pretty ?? process.stdout.isTTY) {
    return pino({ level, base: { service: 'podgate' }, transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' } } });
  }
  const destination = pino.destination({ dest: 1, sync: true, minLength: 4096 });
  // A log reader that went away (EPIPE) must not take the server down with it; there is nowhere left to say so.
  destination.on('error', () => undefined);
  const flusher = setInterval(() => {
    try {
      destination.flush();
    } catch {
      // the reader went away; keep serving
    }
  }, 1000);
  flusher.unref();
  return pino({ level, base: { service: 'podgate' } }, destination);
}
