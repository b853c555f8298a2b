#!/usr/bin/env node
// The installed `podgate` command (npm install / npx). It checks the Node.js version
// before loading the CLI, which an older Node could not even parse.
import { nodeVersionProblem } from '../dist/cli/nodeVersion.js';

const problem = nodeVersionProblem(process.versions.node, process.execPath);
if (problem === undefined) {
  await import('../dist/cli/main.js');
} else {
  process.stderr.write(`${problem}\n`);
  process.exitCode = 1;
}
