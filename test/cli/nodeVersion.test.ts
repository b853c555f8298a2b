import t from 'tap';
import { MINIMUM_NODE_MAJOR, nodeVersionProblem } from '../../src/cli/nodeVersion.ts';

t.test('the installed command refuses an older Node.js, saying what it needs', async (t) => {
  t.equal(
    nodeVersionProblem('20.19.2', '/usr/bin/node'),
    "podgate needs Node.js 24 or newer; this is Node.js 20.19.2 (/usr/bin/node). Install Node.js 24 (https://nodejs.org), or run podgate's container image.",
  );
  t.type(nodeVersionProblem('23.11.0', 'node'), 'string', 'the release before the minimum');
  t.equal(nodeVersionProblem(`${MINIMUM_NODE_MAJOR}.0.0`, 'node'), undefined, 'the minimum itself');
  t.equal(nodeVersionProblem('25.2.1', 'node'), undefined, 'newer');
  t.type(nodeVersionProblem('garbage', 'node'), 'string', 'an unreadable version is not taken for a new one');
  t.equal(nodeVersionProblem(process.versions.node, process.execPath), undefined, 'the Node these tests run on');
});
