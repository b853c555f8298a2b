import { watch, type FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface FileWatchOptions {
  /** How often to compare the files' stat as a safety net for events a filesystem does not send. */
  readonly pollMs?: number;
  /**
   * How long after the first event `onChange` runs; writers rarely write in one step.
   * Later events do not push it back: a neighbour file written every 50 ms must not
   * starve the reload (they schedule one more run after this one instead).
   */
  readonly debounceMs?: number;
}

/**
 * Calls `onChange` (at most one call at a time) when any of `paths` may have
 * changed. Watches the parent directories rather than the files: a mounted
 * ConfigMap or Secret changes by an atomic swap of a `..data` symlink in the
 * directory, which replaces the file instead of writing to it, and an editor's
 * save often does the same. A stat poll (following symlinks) catches whatever
 * the events miss. The caller decides whether anything really changed.
 */
export function watchFiles(paths: readonly string[], onChange: () => Promise<void>, options: FileWatchOptions = {}): { close(): void } {
  const debounceMs = options.debounceMs ?? 100;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  let closed = false;

  const run = (): void => {
    if (closed) return;
    if (running) {
      again = true;
      return;
    }
    running = onChange()
      .catch(() => undefined) // onChange reports its own errors; a watcher must never die of one
      .finally(() => {
        running = undefined;
        if (again) {
          again = false;
          run();
        }
      });
  };
  const schedule = (): void => {
    if (timer) return; // already due: events during the wait are covered by that run
    timer = setTimeout(() => {
      timer = undefined;
      run();
    }, debounceMs);
  };

  const watchers: FSWatcher[] = [];
  for (const directory of new Set(paths.map((path) => dirname(path)))) {
    try {
      const watcher = watch(directory, { persistent: false }, schedule);
      watcher.on('error', () => undefined); // the directory went away; the poll still runs
      watchers.push(watcher);
    } catch {
      // No such directory yet, or no inotify: polling alone will do.
    }
  }

  let last = '';
  const poll = setInterval(() => {
    void signature(paths).then((now) => {
      if (last !== '' && now !== last) schedule();
      last = now;
    });
  }, options.pollMs ?? 2000);
  poll.unref();
  void signature(paths).then((now) => (last = now));

  return {
    close() {
      closed = true;
      clearInterval(poll);
      if (timer) clearTimeout(timer);
      for (const watcher of watchers) watcher.close();
    },
  };
}

async function signature(paths: readonly string[]): Promise<string> {
  const parts = await Promise.all(
    paths.map(async (path) => {
      try {
        const s = await stat(path);
        return `${s.ino}:${s.size}:${s.mtimeMs}`;
      } catch {
        return 'missing';
      }
    }),
  );
  return parts.join('|');
}
