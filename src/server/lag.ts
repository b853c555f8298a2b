/**
 * How late the event loop ran at the last sample, for load shedding: one timer
 * every `sampleIntervalMs`, and how much later than due it fired. Read on every
 * admission request, so reading is a property access.
 *
 * One timer, not a second 10 ms histogram (monitorEventLoopDelay, as
 * @fastify/under-pressure uses; prom-client already runs one for its metrics), and
 * a loop blocked for seconds reports how long, not "no sample".
 */
export class EventLoopLag {
  readonly #timer: NodeJS.Timeout;
  #lagMs = 0;

  constructor(sampleIntervalMs = 100) {
    let last = performance.now();
    this.#timer = setInterval(() => {
      const now = performance.now();
      // Timers never fire early, so anything past the interval is the loop's delay (less ~1 ms of timer slack).
      this.#lagMs = Math.max(0, now - last - sampleIntervalMs);
      last = now;
    }, sampleIntervalMs);
    this.#timer.unref();
  }

  /** Milliseconds, as of the last sample. */
  get ms(): number {
    return this.#lagMs;
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
