// The pure half of HTTPRoute Programmed: which Pods count as ready replicas of which Gateway,
// what their reports mean, and the bounded memory of published configs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeServed, parseServed, SERVED_ANNOTATION } from '../../src/ir/served.ts';
import { GATEWAY_NAMESPACE_LABEL, INSTANCE_LABEL, MANAGED_BY, MANAGED_BY_LABEL, infraName } from '../../src/operator/infrastructure.ts';
import { PUBLISHED_HISTORY, PublishedConfigs, replicaReports, routeProgrammed } from '../../src/operator/route-programmed.ts';

const SHA = (n: number) => n.toString(16).padStart(64, '0');
const pod = (name: string, opts: { ns?: string; instance?: string; ready?: boolean; deleting?: boolean; served?: string } = {}) => ({
  metadata: {
    name,
    namespace: opts.ns ?? 'infra',
    labels: { [MANAGED_BY_LABEL]: MANAGED_BY, [INSTANCE_LABEL]: opts.instance ?? infraName('infra', 'gw'), [GATEWAY_NAMESPACE_LABEL]: opts.ns ?? 'infra' },
    ...(opts.served !== undefined ? { annotations: { [SERVED_ANNOTATION]: opts.served } } : {}),
    ...(opts.deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}),
  },
  status: { conditions: [{ type: 'Ready', status: opts.ready === false ? 'False' : 'True' }] },
});

test('ready replicas: Ready and not being deleted, matched by instance label and namespace; bad reports named', () => {
  const { ready, problems } = replicaReports(
    [
      pod('a', { served: encodeServed({ sha256: SHA(1) }) }),
      pod('b'),
      pod('c', { ready: false, served: encodeServed({ sha256: SHA(1) }) }),
      pod('d', { deleting: true }),
      pod('e', { instance: 'someone-else' }),
      pod('f', { served: '{"sha256":"nope"}' }),
      { metadata: { name: 'g' } },
    ],
    ['infra/gw'],
  );
  assert.deepEqual(ready.get('infra/gw'), [
    { pod: 'infra/a', sha256: SHA(1) },
    { pod: 'infra/b', sha256: undefined },
    { pod: 'infra/f', sha256: undefined },
  ]);
  assert.deepEqual(problems.map((p) => p.pod), ['infra/f', '?/g']);
  assert.match(problems[0].error, /gateway\.vgw\.dev\/served: sha256/);
});

test('Programmed: True only when every ready replica serves the generation; counts in the Pending message', () => {
  const configs = new PublishedConfigs();
  configs.remember('infra/gw', SHA(1), { 'apps/web': 1 });
  configs.remember('infra/gw', SHA(2), { 'apps/web': 2 });
  const at = (gen: number, ...shas: (string | undefined)[]) => routeProgrammed('infra/gw', 'apps/web', gen, shas.map((sha256, i) => ({ pod: `p${i}`, sha256 })), configs);
  assert.deepEqual([at(1).status, at(1).reason, at(1).message], ['False', 'Pending', 'no gateway replica is ready']);
  assert.equal(at(2, SHA(2), SHA(1)).message, '1 of 2 ready gateway replicas serve this generation');
  assert.equal(at(2, SHA(2), SHA(2)).status, 'True');
  assert.equal(at(1, SHA(2), SHA(1)).status, 'True', 'a newer generation serves an older one');
  assert.equal(at(2, SHA(2), SHA(9)).status, 'False', 'an unknown config serves nothing');
  assert.equal(at(2, SHA(2), undefined).status, 'False', 'no report serves nothing');
  assert.equal(routeProgrammed('infra/other', 'apps/web', 1, [{ pod: 'x', sha256: SHA(1) }], configs).status, 'False', 'configs are per Gateway');
  assert.equal(at(2, SHA(2)).observedGeneration, 2);
});

test('published configs are bounded per Gateway and forgotten with the Gateway', () => {
  const configs = new PublishedConfigs();
  for (let i = 0; i < PUBLISHED_HISTORY + 3; i++) configs.remember('infra/gw', SHA(i), { r: i });
  assert.equal(configs.generations('infra/gw', SHA(2)), undefined, 'the oldest go first');
  assert.deepEqual(configs.generations('infra/gw', SHA(PUBLISHED_HISTORY + 2)), { r: PUBLISHED_HISTORY + 2 });
  configs.retain(new Set());
  assert.equal(configs.generations('infra/gw', SHA(PUBLISHED_HISTORY + 2)), undefined);
});

test('served annotation: round trip; oversized, non-JSON and extra fields rejected', () => {
  assert.deepEqual(parseServed(encodeServed({ sha256: SHA(7) })), { ok: true, served: { sha256: SHA(7) } });
  assert.equal(parseServed('x'.repeat(2000)).ok, false);
  assert.equal(parseServed('{').ok, false);
  assert.equal(parseServed(JSON.stringify({ sha256: SHA(7), more: 1 })).ok, false);
  assert.equal(parseServed(undefined).ok, false);
});
