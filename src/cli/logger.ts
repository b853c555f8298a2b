import { pino, type Logger } from 'pino';

/**
 * JSON lines for machines (the default in a container); human-readable when a
 * person runs podgate in a terminal. Header and body are never logged, so the
 * only redaction needed is for a future field that carries a secret by mistake.
 */
export function createLogger(options: { readonly level?: string; readonly pretty?: boolean } = {}): Logger {
  const pretty = options.pretty ?? process.stdout.isTTY;
  return pino({
    level: options.level ?? process.env['LOG_LEVEL'] ?? 'info',
    base: { service: 'podgate' },
    redact: { paths: ['*.key', '*.token', '*.password', 'req.headers.authorization'], censor: '[redacted]' },
    ...(pretty ? { transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' } } } : {}),
  });
}
