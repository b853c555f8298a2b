import t from 'tap';
import { stringMapAt } from '../../src/lib/json.ts';

t.test('stringMapAt: a Map view of the own string entries, whatever keys an attacker sends', async (t) => {
  const pod = JSON.parse('{"metadata":{"labels":{"app":"web","replicas":3,"__proto__":"proto","constructor":"c","empty":"","nested":{"a":"b"}}}}') as unknown;
  const labels = stringMapAt(pod, 'metadata', 'labels');
  t.same([...labels], [['app', 'web'], ['__proto__', 'proto'], ['constructor', 'c'], ['empty', '']], 'string values only, in the object\'s order');
  t.equal(labels.size, 4);
  t.equal(labels.get('app'), 'web');
  t.equal(labels.get('replicas'), undefined, 'a number is no label value');
  t.equal(labels.get('toString'), undefined, 'prototype members are not entries');
  t.equal(labels.has('hasOwnProperty'), false);
  t.equal(labels.has('empty'), true, 'an empty value is a value');
  t.same([...labels.keys()], ['app', '__proto__', 'constructor', 'empty']);
  t.same([...labels.values()], ['web', 'proto', 'c', '']);
  const seen: string[] = [];
  labels.forEach((value, key, map) => {
    seen.push(`${key}=${value}`);
    t.equal(map, labels);
  });
  t.same(seen, ['app=web', '__proto__=proto', 'constructor=c', 'empty=']);
  t.same(new Map(labels), new Map([['app', 'web'], ['__proto__', 'proto'], ['constructor', 'c'], ['empty', '']]), 'copies into a real Map');
});

t.test('stringMapAt: nothing there, or not an object, is an empty map', async (t) => {
  for (const value of [undefined, null, 'labels', 7, ['a'], { metadata: {} }, { metadata: { labels: ['a', 'b'] } }]) {
    const map = stringMapAt(value, 'metadata', 'labels');
    t.equal(map.size, 0);
    t.same([...map], []);
    t.equal(map.get('a'), undefined);
  }
});
