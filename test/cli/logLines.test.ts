import t from 'tap';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { LogLines } from '../../src/cli/logLines.ts';

const line = (n: number) => `${JSON.stringify({ level: 30, n, msg: 'x'.repeat(40) })}\n`;

t.test('lines wait in memory until flushBytes have gathered, then go out whole and in order', async (t) => {
  const path = join(t.testdir(), 'log');
  const fd = openSync(path, 'w');
  t.teardown(() => { closeSync(fd); });
  const lines = new LogLines({ fd, flushBytes: 1000 });
  const perLine = line(0).length;
  const fitting = Math.floor((1000 - 1) / perLine);
  for (let n = 0; n < fitting; n += 1) lines.write(line(n));
  t.equal(readFileSync(path, 'utf8'), '', 'below the threshold nothing is written');
  lines.write(line(fitting));
  const written = readFileSync(path, 'utf8');
  t.equal(written, Array.from({ length: fitting + 1 }, (_, n) => line(n)).join(''), 'at the threshold: every line, in order, complete');
  lines.write(line(99));
  let called = false;
  lines.flush(() => (called = true));
  t.ok(called, "pino's flush(callback) is answered");
  t.equal(readFileSync(path, 'utf8'), written + line(99), 'flush() writes what is left');
  lines.flush();
  t.equal(readFileSync(path, 'utf8'), written + line(99), 'an empty flush writes nothing');
});

t.test('a reader that has gone loses lines, never the server; the loss is told once a reader is back', async (t) => {
  const dir = t.testdir();
  const fifo = join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  const writer = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
  t.teardown(() => { closeSync(writer); });
  const lines = new LogLines({ fd: writer, flushBytes: 1 << 20, base: { service: 'podgate' } });
  lines.write(line(1));
  lines.write(line(2));
  closeSync(reader); // the log collector died: writes now fail with EPIPE
  t.doesNotThrow(() => { lines.flush(); }, 'EPIPE is swallowed');

  const back = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  t.teardown(() => { closeSync(back); });
  lines.write(line(3));
  lines.flush();
  const buffer = Buffer.alloc(4096);
  const received = buffer.subarray(0, readSync(back, buffer)).toString('utf8').trim().split('\n').map((text) => JSON.parse(text) as Record<string, unknown>);
  t.match(received, [{ level: 40, service: 'podgate', msg: '2 log line(s) were lost: stdout was not being read' }, { n: 3 }]);
  t.equal(received.length, 2);
});

