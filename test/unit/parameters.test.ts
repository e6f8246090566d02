import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FORBIDDEN_VARNISHD_PARAMS } from '../../src/ir/varnishd-settings.ts';
import { defaultParameters, parseParameters, quantityToBytes } from '../../src/operator/parameters.ts';
import { parametersCrd } from '../../scripts/manifests.ts';

const object = (spec: unknown) => ({ apiVersion: 'gateway.vgw.dev/v1alpha1', kind: 'GatewayClassParameters', metadata: { name: 'p' }, spec });

function rejected(spec: unknown): string {
  const r = parseParameters(object(spec));
  assert.equal(r.ok, false, `accepted: ${JSON.stringify(spec)}`);
  return r.ok ? '' : r.error;
}

describe('GatewayClassParameters', () => {
  test('defaults are applied by the schema', () => {
    const r = parseParameters(object(undefined));
    assert.ok(r.ok);
    assert.deepEqual(r.value.spec, defaultParameters());
    assert.deepEqual(defaultParameters(), {
      varnish: { parameters: {}, extraArgs: [], storageSize: '256Mi' },
      service: { type: 'LoadBalancer', annotations: {}, labels: {} },
      logging: { mode: 'none', extraArgs: [] },
      metrics: { exposed: true },
      terminationGracePeriodSeconds: 300,
      labels: {},
      annotations: {},
    });
    assert.equal(r.value.spec.replicas, undefined, 'replicas stay unset so an HPA can own them');
    const partial = parseParameters(object({ service: { type: 'NodePort' }, varnish: { parameters: { thread_pools: '4' } } }));
    assert.ok(partial.ok);
    assert.deepEqual(partial.value.spec.service, { type: 'NodePort', annotations: {}, labels: {} });
    assert.equal(partial.value.spec.varnish.storageSize, '256Mi');
  });

  test('a full object parses', () => {
    const r = parseParameters(
      object({
        image: 'registry.example.com:5000/vgw:1.2.3',
        varnish: { parameters: { thread_pool_max: '2000', feature: '+http2', vsl_mask: '-VCL_trace' }, extraArgs: ['-t', '120', '-p', 'default_grace=30', '-W', 'epoll'], storageSize: '1Gi' },
        resources: { requests: { cpu: '500m', memory: '512Mi' }, limits: { memory: '2Gi' } },
        replicas: 3,
        service: { type: 'LoadBalancer', annotations: { 'a.example.com/x': 'y' }, labels: { team: 'web' }, loadBalancerClass: 'example.com/lb', externalTrafficPolicy: 'Local' },
        logging: { mode: 'varnishncsa', format: '%h %r %s', extraArgs: ['-c', '-q', 'RespStatus >= 500'] },
        metrics: { exposed: false },
        terminationGracePeriodSeconds: 600,
        labels: { env: 'prod' },
        annotations: { note: 'free text' },
      }),
    );
    assert.ok(r.ok, r.ok ? '' : r.error);
  });

  test('every forbidden varnishd parameter is rejected, naming the field', () => {
    for (const name of FORBIDDEN_VARNISHD_PARAMS) {
      const error = rejected({ varnish: { parameters: { [name]: 'on' } } });
      assert.match(error, new RegExp(`^GatewayClassParameters p: spec\\.varnish\\.parameters\\.${name}: parameter ${name} is not allowed`));
      // The same parameter smuggled in through -p.
      assert.match(rejected({ varnish: { extraArgs: ['-p', `${name}=x`] } }), /spec\.varnish\.extraArgs\.1: -p parameter .* is not allowed/);
    }
  });

  test('parameter names and values outside the allow-list patterns are rejected', () => {
    assert.match(rejected({ varnish: { parameters: { 'Thread-Pools': '2' } } }), /spec\.varnish\.parameters\.Thread-Pools: parameter name must match/);
    for (const value of ['2 -f /etc/x', 'a"b', '/usr/lib', '', 'x;y', 'a\nb']) {
      assert.match(rejected({ varnish: { parameters: { thread_pools: value } } }), /spec\.varnish\.parameters\.thread_pools: parameter value must match/, value);
    }
    const many = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`p${i}`, '1']));
    assert.match(rejected({ varnish: { parameters: many } }), /at most 64 parameters/);
  });

  test('every varnishd option that belongs to the agent is rejected, naming the field', () => {
    for (const flag of ['-F', '-f', '-n', '-a', '-T', '-S', '-b', '-s', '-j', '-P', '-I', '-M', '-C', '-d', '-x', '-E', '--', 'x']) {
      const error = rejected({ varnish: { extraArgs: [flag, 'v'] } });
      assert.match(error, /spec\.varnish\.extraArgs\.0: option .* is not allowed/, flag);
    }
    assert.match(rejected({ varnish: { extraArgs: ['-t'] } }), /spec\.varnish\.extraArgs\.0: option -t needs a value/);
    assert.match(rejected({ varnish: { extraArgs: ['-t', '1 -f x'] } }), /spec\.varnish\.extraArgs\.1: value of -t must match/);
    assert.match(rejected({ varnish: { extraArgs: ['-p', 'novalue'] } }), /spec\.varnish\.extraArgs\.1: -p must be NAME=VALUE/);
  });

  test('logging options that write files or detach are rejected; format only with varnishncsa', () => {
    for (const flag of ['-w', '-a', '-D', '-P', '-n', '-N', '-r', '-F']) {
      assert.match(rejected({ logging: { mode: 'varnishlog', extraArgs: [flag, 'x'] } }), /spec\.logging\.extraArgs\.0: option .* is not allowed/, flag);
    }
    assert.match(rejected({ logging: { mode: 'varnishlog', format: '%h' } }), /spec\.logging\.format: format applies only to mode varnishncsa/);
    assert.match(rejected({ logging: { mode: 'varnishncsa', format: 'a\u0000b' } }), /spec\.logging\.format: must not contain control characters/);
    assert.match(rejected({ logging: { mode: 'syslog' } }), /spec\.logging\.mode/);
  });

  test('other fields are checked and named', () => {
    assert.match(rejected({ image: 'vgw:1; rm -rf /' }), /spec\.image: must be an image reference/);
    assert.match(rejected({ varnish: { storageSize: 'lots' } }), /spec\.varnish\.storageSize: must be a Kubernetes quantity/);
    assert.match(rejected({ varnish: { storageSize: '100Ki' } }), /spec\.varnish\.storageSize: must be at least 1Mi/);
    assert.match(rejected({ resources: { limits: { memory: '1 GB' } } }), /spec\.resources\.limits\.memory/);
    assert.match(rejected({ replicas: 1.5 }), /spec\.replicas/);
    assert.match(rejected({ service: { type: 'ExternalName' } }), /spec\.service\.type/);
    assert.match(rejected({ service: { externalTrafficPolicy: 'Anywhere' } }), /spec\.service\.externalTrafficPolicy/);
    assert.match(rejected({ terminationGracePeriodSeconds: -1 }), /spec\.terminationGracePeriodSeconds/);
    assert.match(rejected({ metrics: { exposed: 'yes' } }), /spec\.metrics\.exposed/);
    assert.match(rejected({ labels: { 'bad key!': 'x' } }), /spec\.labels/);
    assert.match(rejected({ unknownField: 1 }), /spec: Unrecognized key/);
    const wrongKind = parseParameters({ ...object({}), kind: 'Other' });
    assert.ok(!wrongKind.ok && /kind/.test(wrongKind.error));
  });

  test('storage sizes become bytes', () => {
    assert.equal(quantityToBytes('256Mi'), 256 * 2 ** 20);
    assert.equal(quantityToBytes('1G'), 1e9);
    assert.equal(quantityToBytes('2e6'), 2e6);
    assert.equal(quantityToBytes('1.5Gi'), 1.5 * 2 ** 30);
    assert.equal(quantityToBytes('x'), null);
  });
});

type Node = { [key: string]: unknown };

/** Every place the apiserver's structural-schema rules would refuse, as JSON paths. */
function structuralProblems(node: unknown, path = '$'): string[] {
  if (Array.isArray(node)) return node.flatMap((n, i) => structuralProblems(n, `${path}[${i}]`));
  if (!node || typeof node !== 'object') return [];
  const n = node as Node;
  const out: string[] = [];
  if ('$ref' in n) out.push(`${path}: $ref`);
  if ('const' in n) out.push(`${path}: const`);
  if ('properties' in n && 'additionalProperties' in n) out.push(`${path}: additionalProperties beside properties`);
  if (n.additionalProperties === false) out.push(`${path}: additionalProperties: false`);
  if ('x-kubernetes-preserve-unknown-fields' in n) out.push(`${path}: x-kubernetes-preserve-unknown-fields`);
  for (const key of ['anyOf', 'oneOf', 'allOf']) {
    if (!Array.isArray(n[key])) continue;
    // Inside these the apiserver forbids types (and so unions of different shapes).
    for (const [i, branch] of (n[key] as Node[]).entries()) if ('type' in branch) out.push(`${path}.${key}[${i}]: type inside ${key}`);
  }
  if (('properties' in n || 'additionalProperties' in n || 'items' in n) && !('type' in n)) out.push(`${path}: no type`);
  for (const [key, value] of Object.entries(n)) {
    if (key === 'x-kubernetes-validations' || key === 'default' || key === 'enum') continue;
    if (key === 'properties') {
      for (const [name, sub] of Object.entries(value as Node)) out.push(...structuralProblems(sub, `${path}.properties.${name}`));
    } else out.push(...structuralProblems(value, `${path}.${key}`));
  }
  return out;
}

describe('GatewayClassParameters CRD', () => {
  const crd = parametersCrd() as { spec: { scope: string; group: string; versions: { name: string; schema: { openAPIV3Schema: Node } }[] } };
  const schema = crd.spec.versions[0].schema.openAPIV3Schema;
  const spec = (schema.properties as Record<string, Node>).spec;

  test('the schema is structural', () => {
    assert.deepEqual(structuralProblems(schema), []);
    // The checker sees what it must refuse.
    assert.equal(structuralProblems({ type: 'object', properties: { a: { $ref: '#/x' } }, additionalProperties: false }).length, 3);
    assert.equal(structuralProblems({ anyOf: [{ type: 'string' }, { type: 'object' }] }).length, 2);
  });

  test('cluster-scoped, group gateway.vgw.dev, version v1alpha1', () => {
    assert.equal(crd.spec.scope, 'Cluster');
    assert.equal(crd.spec.group, 'gateway.vgw.dev');
    assert.equal(crd.spec.versions[0].name, 'v1alpha1');
  });

  test('defaults, enums and the forbidden-parameter rule are in the schema', () => {
    const props = spec.properties as Record<string, Node>;
    assert.equal(props.terminationGracePeriodSeconds.default, 300);
    const service = props.service.properties as Record<string, Node>;
    assert.equal(service.type.default, 'LoadBalancer');
    assert.deepEqual(service.type.enum, ['ClusterIP', 'NodePort', 'LoadBalancer']);
    const varnishParams = (props.varnish.properties as Record<string, Node>).parameters;
    const rules = varnishParams['x-kubernetes-validations'] as { rule: string }[];
    for (const name of FORBIDDEN_VARNISHD_PARAMS) assert.ok(rules[0].rule.includes(`'${name}'`), name);
    assert.equal(props.replicas.default, undefined);
    assert.equal((props.metrics.properties as Record<string, Node>).exposed.default, true);
  });
});
