import { pino, type Logger } from 'pino';

/**
 * JSON lines for machines (the default in a container); human-readable when a
 * person runs podgate in a terminal. What is logged is chosen field by field
 * (never a reviewed object, a header or a key), so no redaction pass runs on
 * the hot path.
 *
 * JSON goes through an asynchronous, buffered destination: one log line per
 * admission decision written synchronously halves podgate's throughput. The
 * buffer is flushed on exit and every second, so a line is at most that late.
 */
export function createLogger(options: { readonly level?: string; readonly pretty?: boolean } = {}): Logger {
  const level = options.level ?? process.env['LOG_LEVEL'] ?? 'info';
  if (options.pretty ?? process.stdout.isTTY) {
    return pino({ level, base: { service: 'podgate' }, transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' } } });
  }
  const destination = pino.destination({ dest: 1, sync: false, minLength: 4096 });
  const flusher = setInterval(() => {
    destination.flush();
  }, 1000);
  flusher.unref();
  process.once('exit', () => {
    destination.flushSync();
  });
  return pino({ level, base: { service: 'podgate' } }, destination);
}
