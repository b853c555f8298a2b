import { writeSync } from 'node:fs';

/** How long a write to a full pipe waits before it tries again, and how many times it tries. */
const FULL_PIPE_WAIT_MS = 10;
const FULL_PIPE_TRIES = 100;

/**
 * pino's destination for JSON lines: lines are kept in memory and written with
 * one synchronous `write(2)` once `flushBytes` have gathered (or on `flush()`).
 *
 * Why not pino.destination (sonic-boom): with a minLength it appends each line to
 * one growing string and measures that string's UTF-8 length on every write,
 * which flattens it each time: about a quarter of podgate's per-review cost at
 * 4 KiB. Here a line costs an array push.
 *
 * Writes stay synchronous (an asynchronous writer left a stopping podgate hanging
 * on a stdout whose reader had gone). A full non-blocking pipe is waited on for
 * at most a second; a reader that has gone (EPIPE) or a pipe that stays full
 * loses the lines instead of stopping the server: admission must not wait on logs.
 */
export class LogLines {
  readonly #fd: number;
  readonly #flushBytes: number;
  #lines: string[] = [];
  #pending = 0;
  /** Lines dropped because the reader had gone or did not read; reported ahead of the next lines that get through. */
  #dropped = 0;

  /** Fields every line carries (pino's `base`), for the line that reports lost ones. */
  readonly #base: Readonly<Record<string, string>>;

  constructor(options: { readonly fd: number; readonly flushBytes: number; readonly base?: Readonly<Record<string, string>> }) {
    this.#fd = options.fd;
    this.#flushBytes = options.flushBytes;
    this.#base = options.base ?? {};
  }

  /** pino calls this with one complete line (newline included). */
  write(line: string): void {
    this.#lines.push(line);
    this.#pending += line.length; // UTF-16 units, not bytes: a threshold, not a size
    if (this.#pending >= this.#flushBytes) this.flush();
  }

  /** Writes what is buffered. pino's `logger.flush(cb)` lands here. */
  flush(done?: (error?: Error) => void): void {
    if (this.#lines.length > 0) {
      const lines = this.#lines.length;
      const lost = this.#dropped;
      if (lost > 0) this.#lines.unshift(`${JSON.stringify({ level: 40, time: Date.now(), ...this.#base, msg: `${lost} log line(s) were lost: stdout was not being read` })}\n`);
      const data = Buffer.from(this.#lines.join(''));
      this.#lines = [];
      this.#pending = 0;
      this.#dropped = this.#writeAll(data) ? 0 : lost + lines;
    }
    done?.();
  }

  /** True when every byte went out. */
  #writeAll(data: Buffer): boolean {
    let offset = 0;
    let tries = 0;
    while (offset < data.length) {
      try {
        offset += writeSync(this.#fd, data, offset);
      } catch (error) {
        if (!isFullPipe(error) || ++tries > FULL_PIPE_TRIES) return false;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, FULL_PIPE_WAIT_MS);
      }
    }
    return true;
  }
}

function isFullPipe(error: unknown): boolean {
  return error instanceof Error && 'code' in error && error.code === 'EAGAIN';
}
