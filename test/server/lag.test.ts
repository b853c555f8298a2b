import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { EventLoopLag } from '../../src/server/lag.ts';

const block = (ms: number) => {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // the event loop waits
  }
};

t.test('the lag is near zero on an idle loop, follows a blocked one, and drops back', async (t) => {
  const lag = new EventLoopLag(50);
  t.teardown(() => { lag.stop(); });
  await sleep(200);
  // Bounds wide enough for a busy shared machine, far from the 300+ ms of the block below.
  t.ok(lag.ms < 150, `idle: ${String(lag.ms)} ms`);
  // The sample due during the block fires after it, late by about the block less one interval.
  block(400);
  await sleep(1);
  t.ok(lag.ms > 300 && lag.ms < 1000, `blocked 400 ms: ${String(lag.ms)} ms`);
  await sleep(200);
  t.ok(lag.ms < 150, `idle again: ${String(lag.ms)} ms`);
});

t.test('no sample is taken after stop()', async (t) => {
  const lag = new EventLoopLag(20);
  await sleep(60);
  lag.stop();
  const atStop = lag.ms;
  block(200); // a sample after this would read ~180 ms
  await sleep(60);
  t.equal(lag.ms, atStop, `no sample after stop (${String(lag.ms)} ms)`);
});
