import { readFileSync } from 'node:fs';

/**
 * podgate's version, from the package.json one level above src/ or dist/ (the image
 * and the runtime smoke ship it beside dist/); read once.
 */
let version: string | undefined;
export function packageVersion(): string {
  if (version === undefined) {
    const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    version = typeof manifest.version === 'string' ? manifest.version : 'unknown';
  }
  return version;
}

/** `podgate 0.1.0 (Node v24.21.0)`: podgate needs Node 24 or later, so the line says which runs it. */
export function versionLine(): string {
  return `podgate ${packageVersion()} (Node ${process.version})`;
}
