#!/usr/bin/env node
// The podgate executable: everything lives in run.ts so tests can call it in-process.
import { processIO } from './io.ts';
import { main } from './run.ts';

process.exitCode = await main(process.argv.slice(2), processIO);
