import { monitorEventLoopDelay } from 'node:perf_hooks';

/**
 * How late the event loop ran over the last sample interval (the mean delay of
 * libuv's timer, less its own resolution), for load shedding. Read on every
 * admission request, so reading is a property access; the sampling runs on an
 * unref'd timer. The measure @fastify/under-pressure uses, without its per-request
 * hook machinery (which rebuilt Fastify's route options on every request).
 */
export class EventLoopLag {
  readonly #histogram = monitorEventLoopDelay({ resolution: 10 });
  readonly #timer: NodeJS.Timeout;
  #lagMs = 0;

  constructor(sampleIntervalMs = 100) {
    this.#histogram.enable();
    this.#timer = setInterval(() => {
      // No tick of the 10 ms timer recorded in a whole interval: the loop was blocked throughout.
      this.#lagMs = this.#histogram.count === 0 ? Infinity : Math.max(0, this.#histogram.mean / 1e6 - 10);
      this.#histogram.reset();
    }, sampleIntervalMs);
    this.#timer.unref();
  }

  /** Milliseconds, as of the last sample (Infinity: blocked for the whole interval). */
  get ms(): number {
    return this.#lagMs;
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#histogram.disable();
  }
}
