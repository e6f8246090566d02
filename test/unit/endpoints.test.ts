// EndpointSlices -> ready endpoints per Service port: slices are found by the
// kubernetes.io/service-name label, several slices of one Service are merged, endpoints whose
// ready condition is false are skipped (nil means ready), and the Service port is found in a
// slice by the Service port's name, which is how named targetPorts resolve.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { resolveEndpoints } from '../../src/gatewayapi/endpoints.ts';
import type { EndpointSlice, Service } from '../../src/gatewayapi/types.ts';
import type { IRService } from '../../src/ir/types.ts';
import { NS, endpointSlice, service } from './fixtures/builders.ts';

const ep = (addresses: string[], conditions?: { ready?: boolean; serving?: boolean; terminating?: boolean }) => (conditions ? { addresses, conditions } : { addresses });
const ref = (name: string, port: number, namespace = NS): IRService => ({ namespace, name, port, portName: '' });

/** The translator copies the Service port's name and targetPort into the IR; so does this. */
function withServicePorts(services: IRService[], all: Service[]): IRService[] {
  return services.map((r) => {
    const port = all.find((s) => s.metadata.namespace === r.namespace && s.metadata.name === r.name)?.spec.ports?.find((p) => p.port === r.port);
    if (!port) return { ...r, portName: '(no such port)' };
    return port.targetPort === undefined ? { ...r, portName: port.name ?? '' } : { ...r, portName: port.name ?? '', targetPort: port.targetPort };
  });
}

function resolve(services: IRService[], all: Service[], slices: EndpointSlice[]) {
  return Object.fromEntries([...resolveEndpoints(withServicePorts(services, all), slices)].map(([k, v]) => [k, v.map((e) => `${e.address}:${e.port}`)]));
}

describe('resolveEndpoints', () => {
  test('one slice, ready endpoints, unnamed single port', () => {
    const out = resolve(
      [ref('svc', 80)],
      [service('svc', [{ port: 80, targetPort: 8080 }])],
      [endpointSlice('svc-a', 'svc', { ports: [{ port: 8080, protocol: 'TCP' }], endpoints: [ep(['10.1.0.1']), ep(['10.1.0.2'], { ready: true })] })],
    );
    assert.deepEqual(out, { [`${NS}/svc:80`]: ['10.1.0.1:8080', '10.1.0.2:8080'] });
  });

  test('slices of one Service are merged, duplicates collapse, output is sorted', () => {
    const out = resolve(
      [ref('svc', 80)],
      [service('svc', [{ port: 80, targetPort: 8080 }])],
      [
        endpointSlice('svc-b', 'svc', { ports: [{ port: 8080 }], endpoints: [ep(['10.1.0.9']), ep(['10.1.0.1'])] }),
        endpointSlice('svc-a', 'svc', { ports: [{ port: 8080 }], endpoints: [ep(['10.1.0.5']), ep(['10.1.0.1'])] }),
      ],
    );
    assert.deepEqual(out[`${NS}/svc:80`], ['10.1.0.1:8080', '10.1.0.5:8080', '10.1.0.9:8080']);
  });

  const readiness: { name: string; conditions: { ready?: boolean; serving?: boolean; terminating?: boolean } | undefined; included: boolean }[] = [
    { name: 'no conditions (nil ready means ready)', conditions: undefined, included: true },
    { name: 'empty conditions', conditions: {}, included: true },
    { name: 'ready=true', conditions: { ready: true }, included: true },
    { name: 'ready=false', conditions: { ready: false }, included: false },
    { name: 'ready=false, serving=true, terminating=true', conditions: { ready: false, serving: true, terminating: true }, included: false },
    { name: 'ready=false, serving=false', conditions: { ready: false, serving: false }, included: false },
  ];
  for (const c of readiness) {
    test(`endpoint readiness: ${c.name} -> ${c.included ? 'used' : 'skipped'}`, () => {
      const out = resolve([ref('svc', 80)], [service('svc', [{ port: 80, targetPort: 8080 }])], [endpointSlice('s', 'svc', { ports: [{ port: 8080 }], endpoints: [ep(['10.1.0.1'], c.conditions)] })]);
      assert.deepEqual(out[`${NS}/svc:80`], c.included ? ['10.1.0.1:8080'] : []);
    });
  }

  test('named target ports resolve through the slice port named after the Service port', () => {
    const svc = service('svc', [
      { name: 'http', port: 80, targetPort: 'web' },
      { name: 'metrics', port: 9090, targetPort: 'prom' },
    ]);
    const slices = [
      endpointSlice('s1', 'svc', { ports: [{ name: 'http', port: 3000 }, { name: 'metrics', port: 3001 }], endpoints: [ep(['10.1.0.1'])] }),
      // A second slice where the same named port maps to a different number (pods differ).
      endpointSlice('s2', 'svc', { ports: [{ name: 'metrics', port: 4001 }, { name: 'http', port: 4000 }], endpoints: [ep(['10.1.0.2'])] }),
    ];
    const out = resolve([ref('svc', 80), ref('svc', 9090)], [svc], slices);
    assert.deepEqual(out, {
      [`${NS}/svc:80`]: ['10.1.0.1:3000', '10.1.0.2:4000'],
      [`${NS}/svc:9090`]: ['10.1.0.1:3001', '10.1.0.2:4001'],
    });
  });

  test('a slice without the Service port name contributes nothing for that port', () => {
    const svc = service('svc', [
      { name: 'http', port: 80, targetPort: 8080 },
      { name: 'admin', port: 81, targetPort: 8081 },
    ]);
    const out = resolve([ref('svc', 81)], [svc], [endpointSlice('s', 'svc', { ports: [{ name: 'http', port: 8080 }], endpoints: [ep(['10.1.0.1'])] })]);
    assert.deepEqual(out[`${NS}/svc:81`], []);
  });

  test('only slices labelled for the Service, in its namespace, count', () => {
    const out = resolve(
      [ref('svc', 80)],
      [service('svc', [{ port: 80, targetPort: 8080 }]), service('svc', [{ port: 80, targetPort: 8080 }], 'other')],
      [
        endpointSlice('mine', 'svc', { ports: [{ port: 8080 }], endpoints: [ep(['10.1.0.1'])] }),
        endpointSlice('other-service', 'svc2', { ports: [{ port: 8080 }], endpoints: [ep(['10.9.0.1'])] }),
        endpointSlice('other-namespace', 'svc', { namespace: 'other', ports: [{ port: 8080 }], endpoints: [ep(['10.9.0.2'])] }),
        endpointSlice('unlabelled', undefined, { ports: [{ port: 8080 }], endpoints: [ep(['10.9.0.3'])] }),
      ],
    );
    assert.deepEqual(out[`${NS}/svc:80`], ['10.1.0.1:8080']);
  });

  test('FQDN slices are skipped; IPv6 slices are used', () => {
    const out = resolve(
      [ref('svc', 80)],
      [service('svc', [{ port: 80, targetPort: 8080 }])],
      [
        endpointSlice('fqdn', 'svc', { addressType: 'FQDN', ports: [{ port: 8080 }], endpoints: [ep(['backend.example.com'])] }),
        endpointSlice('v6', 'svc', { addressType: 'IPv6', ports: [{ port: 8080 }], endpoints: [ep(['fd00::1'])] }),
      ],
    );
    assert.deepEqual(out[`${NS}/svc:80`], ['fd00::1:8080']);
  });

  test('every address of an endpoint is used', () => {
    const out = resolve([ref('svc', 80)], [service('svc', [{ port: 80, targetPort: 8080 }])], [endpointSlice('s', 'svc', { ports: [{ port: 8080 }], endpoints: [ep(['10.1.0.1', '10.1.0.2'])] })]);
    assert.deepEqual(out[`${NS}/svc:80`], ['10.1.0.1:8080', '10.1.0.2:8080']);
  });

  test('null endpoints and null ports are tolerated', () => {
    const out = resolve([ref('svc', 80)], [service('svc', [{ port: 80, targetPort: 8080 }])], [endpointSlice('s', 'svc', { ports: null, endpoints: null })]);
    assert.deepEqual(out[`${NS}/svc:80`], []);
  });

  test('a referenced Service that is missing, or lacks the port, resolves to no endpoints', () => {
    const out = resolve(
      [ref('gone', 80), ref('svc', 99)],
      [service('svc', [{ port: 80, targetPort: 8080 }])],
      [endpointSlice('s', 'svc', { ports: [{ port: 8080 }], endpoints: [ep(['10.1.0.1'])] }), endpointSlice('g', 'gone', { ports: [{ port: 8080 }], endpoints: [ep(['10.1.0.2'])] })],
    );
    assert.deepEqual(out, { [`${NS}/gone:80`]: [], [`${NS}/svc:99`]: [] });
  });

  test('every requested service key is present in the map, even with no slices at all', () => {
    const map = resolveEndpoints([ref('a', 1), ref('b', 2, 'x')], []);
    assert.deepEqual([...map.keys()].sort(), [`${NS}/a:1`, 'x/b:2']);
  });

  test('a Service port used by two IR entries resolves independently of order', () => {
    const svc = service('svc', [{ name: 'a', port: 80 }, { name: 'b', port: 81 }]);
    const slices = [endpointSlice('s', 'svc', { ports: [{ name: 'b', port: 7001 }, { name: 'a', port: 7000 }], endpoints: [ep(['10.1.0.1'])] })];
    const x = resolve([ref('svc', 80), ref('svc', 81)], [svc], slices);
    const y = resolve([ref('svc', 81), ref('svc', 80)], [svc], slices);
    assert.deepEqual(x, y);
    assert.deepEqual(x[`${NS}/svc:81`], ['10.1.0.1:7001']);
  });
});
