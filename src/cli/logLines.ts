import { writeSync } from 'node:fs';

/** Bytes kept for a reader that is slow (a full pipe) before lines are dropped instead. */
const MAX_BACKLOG_BYTES = 4 * 1024 * 1024;
/** How soon a full pipe is tried again. */
const RETRY_MS = 50;
/** At exit, how long a full pipe is waited on (admission is over by then). */
const EXIT_WAIT_MS = 1000;

/**
 * pino's destination for JSON lines: lines are kept in memory and written with
 * one synchronous `write(2)` once `flushBytes` have gathered (or on `flush()`).
 *
 * Why not pino.destination (sonic-boom): with a minLength it appends each line to
 * one growing string and measures that string's UTF-8 length on every write,
 * which flattens it each time: about a quarter of podgate's per-review cost at
 * 4 KiB. Here a line costs an array push.
 *
 * A write never waits: stdout is a non-blocking pipe, and what a full pipe does not
 * take is kept (up to MAX_BACKLOG_BYTES) and tried again from a timer, so a slow
 * or stalled log reader never adds latency to admission. Past the backlog, or when
 * the reader has gone (EPIPE), lines are dropped and counted; the count is told
 * ahead of the next lines that get through. Only at exit does it wait, a second at
 * most, for the pipe to take the rest.
 */
export class LogLines {
  readonly #fd: number;
  readonly #flushBytes: number;
  #lines: string[] = [];
  #pending = 0;
  /** What a full pipe has not taken yet, oldest first. */
  #backlog: Buffer[] = [];
  #backlogBytes = 0;
  #retry: NodeJS.Timeout | undefined;
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

  /** Writes what is buffered, as far as the pipe takes it without waiting. pino's `logger.flush(cb)` lands here. */
  flush(done?: (error?: Error) => void): void {
    this.#enqueueLines();
    this.#drain();
    done?.();
  }

  /** At exit: like flush, but waits (a second at most) for a full pipe to take the rest. */
  flushAtExit(): void {
    this.#enqueueLines();
    const deadline = Date.now() + EXIT_WAIT_MS;
    while (!this.#drain() && Date.now() < deadline) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
  }

  #enqueueLines(): void {
    if (this.#lines.length === 0) return;
    const lines = this.#lines.length;
    const data = Buffer.from(this.#lines.join(''));
    this.#lines = [];
    this.#pending = 0;
    if (this.#backlogBytes + data.length > MAX_BACKLOG_BYTES) {
      this.#dropped += lines;
      return;
    }
    if (this.#dropped > 0 && this.#backlogBytes === 0) {
      const notice = `${JSON.stringify({ level: 40, time: Date.now(), ...this.#base, msg: `${this.#dropped} log line(s) were lost: stdout was not being read` })}\n`;
      this.#backlog.push(Buffer.from(notice));
      this.#backlogBytes += notice.length;
      this.#dropped = 0;
    }
    this.#backlog.push(data);
    this.#backlogBytes += data.length;
  }

  /** Writes the backlog without waiting; true when it is empty. A full pipe schedules another try. */
  #drain(): boolean {
    while (this.#backlog.length > 0) {
      const [head] = this.#backlog;
      if (head === undefined) break;
      let written: number;
      try {
        written = writeSync(this.#fd, head);
      } catch (error) {
        if (isFullPipe(error)) {
          this.#scheduleRetry();
          return false;
        }
        // The reader has gone (EPIPE) or the fd is unusable: lose what is waiting, and say so later.
        this.#dropped += countLines(this.#backlog);
        this.#backlog = [];
        this.#backlogBytes = 0;
        return true;
      }
      this.#backlogBytes -= written;
      if (written === head.length) this.#backlog.shift();
      else this.#backlog[0] = head.subarray(written);
    }
    return true;
  }

  #scheduleRetry(): void {
    if (this.#retry !== undefined) return;
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      this.#drain();
    }, RETRY_MS);
    this.#retry.unref();
  }
}

function countLines(buffers: readonly Buffer[]): number {
  let lines = 0;
  for (const buffer of buffers) for (let i = buffer.indexOf(10); i !== -1; i = buffer.indexOf(10, i + 1)) lines += 1;
  return lines;
}

function isFullPipe(error: unknown): boolean {
  return error instanceof Error && 'code' in error && error.code === 'EAGAIN';
}
