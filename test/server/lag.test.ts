import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { EventLoopLag } from '../../src/server/lag.ts';

const block = (ms: number) => {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // the event loop waits
  }
};

t.test('the lag is near zero on an idle loop and follows a blocked one', async (t) => {
  const lag = new EventLoopLag(50);
  t.teardown(() => { lag.stop(); });
  await sleep(200);
  t.ok(lag.ms < 80, `idle: ${String(lag.ms)} ms`);
  // Blocked in slices, so the 10 ms timer ticks late rather than never.
  let seen = 0;
  for (let i = 0; i < 10 && seen <= 100; i += 1) {
    block(150);
    await sleep(1);
    seen = Math.max(seen, lag.ms);
  }
  t.ok(seen > 100, `blocked 150 ms at a time: ${String(seen)} ms`);
  await sleep(300);
  t.ok(lag.ms < 80, `idle again: ${String(lag.ms)} ms`);
});
