import { readFileSync } from 'node:fs';

/**
 * `podgate 0.1.0 (Node v24.21.0)`: the version from the package.json one level above
 * src/ or dist/ (the image and the runtime smoke ship it beside dist/), and the Node
 * that runs it, since podgate needs 24 or later.
 */
export function versionLine(): string {
  const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  return `podgate ${typeof manifest.version === 'string' ? manifest.version : 'unknown'} (Node ${process.version})`;
}
