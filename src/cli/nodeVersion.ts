/**
 * The Node.js podgate runs on. Kept free of imports and newer syntax: the installed
 * `podgate` command (bin/podgate.js) loads this first, on whatever Node is on the
 * PATH, so an old one is told what it needs instead of failing on the code that follows.
 */
export const MINIMUM_NODE_MAJOR = 24;

/** Why this Node cannot run podgate, or undefined when it can. */
export function nodeVersionProblem(version: string, executable: string): string | undefined {
  const major = Number(version.split('.')[0]);
  if (Number.isInteger(major) && major >= MINIMUM_NODE_MAJOR) return undefined;
  return `podgate needs Node.js ${MINIMUM_NODE_MAJOR} or newer; this is Node.js ${version} (${executable}). Install Node.js ${MINIMUM_NODE_MAJOR} (https://nodejs.org), or run podgate's container image.`;
}
