// Endpoint backend names (src/vcl/backend-names.ts): address -> VCL identifier -> label, and
// how the compiler uses them.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { IR_VERSION, type EndpointMap, type IREndpoint, type RoutingIR } from '../../src/ir/types.ts';
import { backendLabel, backendName, canonicalAddress, endpointBackend } from '../../src/vcl/backend-names.ts';
import { compileVcl } from '../../src/vcl/compile.ts';

describe('backend names', () => {
  test('IPv4 and IPv6 endpoints', () => {
    assert.equal(backendName('10.1.2.3', 8080), 'vgw_e4_10_1_2_3_8080');
    assert.equal(backendName('fd00::1', 80), 'vgw_e6_fd00__1_80');
    assert.equal(backendLabel('vgw_e4_10_1_2_3_8080'), '10.1.2.3:8080');
    assert.equal(backendLabel('vgw_e6_fd00__1_80'), '[fd00::1]:80');
  });

  test('round trip, IPv6 with and without `::`, at either end or none', () => {
    const cases: [string, number, string][] = [
      ['10.1.2.3', 8080, '10.1.2.3:8080'],
      ['0.0.0.0', 0, '0.0.0.0:0'],
      ['255.255.255.255', 65535, '255.255.255.255:65535'],
      ['fd00::1', 80, '[fd00::1]:80'],
      ['::1', 443, '[::1]:443'],
      ['fd00::', 1, '[fd00::]:1'],
      ['::', 9, '[::]:9'],
      ['2001:db8:1:2:3:4:5:6', 8080, '[2001:db8:1:2:3:4:5:6]:8080'],
      ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 65535, '[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535'],
      ['1:0:0:2::3', 80, '[1:0:0:2::3]:80'],
    ];
    for (const [address, port, label] of cases) {
      const name = backendName(address, port);
      assert.ok(name && /^[A-Za-z][A-Za-z0-9_-]*$/.test(name), `${name} is a VCL identifier`);
      assert.equal(backendLabel(name), label, name);
    }
    assert.equal(backendName('::', 9), 'vgw_e6____9');
  });

  test('two spellings of one IPv6 address give one name; the host declared is the canonical one', () => {
    const canonical = endpointBackend('fd00::1', 80);
    assert.deepEqual(canonical, { name: 'vgw_e6_fd00__1_80', host: 'fd00::1' });
    for (const spelling of ['FD00::1', 'fd00:0:0:0:0:0:0:1', 'fd00:0000::0001', 'Fd00:0::0:1']) assert.deepEqual(endpointBackend(spelling, 80), canonical, spelling);
    // The longest run of zero groups is the one written `::`; IPv4-mapped tails are hex.
    assert.equal(canonicalAddress('1:0:0:2:0:0:0:3'), '1:0:0:2::3');
    assert.equal(canonicalAddress('::ffff:1.2.3.4'), '::ffff:102:304');
    assert.equal(backendLabel(backendName('::ffff:1.2.3.4', 80)!), '[::ffff:102:304]:80');
  });

  test('not an IP literal, or a port out of range: no name (the compiler numbers it)', () => {
    for (const address of ['backend.example', '', '010.1.2.3', '1.2.3', '10.1.2.3.4', 'fe80::1%eth0', '[fd00::1]', '10.1.2.3:80']) {
      assert.equal(backendName(address, 80), null, address);
    }
    for (const port of [-1, 65536, 1.5, Number.NaN]) assert.equal(backendName('10.1.2.3', port), null, String(port));
  });

  test('names that are not ours, or not as we write them, have no label', () => {
    const names = [
      'vgw_e0', 'vgw_e12', 'vgw_none', 'default', 'boot', 'd1(10.0.0.1:80)',
      'vgw_e4_10_1_2_3', // no port
      'vgw_e4_10_1_2_3_', // empty port
      'vgw_e4_10_1_2_3_080', // port with a leading zero
      'vgw_e4_10_1_2_3_65536', // port out of range
      'vgw_e4_10_1_2_3_4_80', // five parts
      'vgw_e4_010_1_2_3_80', // leading zero in the address
      'vgw_e6_10_1_2_3_80', // wrong version digit
      'vgw_e4_fd00__1_80',
      'vgw_e6_FD00__1_80', // upper case
      'vgw_e6_fd00_0_0_0_0_0_0_1_80', // not canonical
      'vgw_e6_fd00___1_80', // ':::'
      'vgw_e5_10_1_2_3_80',
      'xvgw_e4_10_1_2_3_80',
      'vgw_e4_10_1_2_3_80x',
      '',
    ];
    for (const name of names) assert.equal(backendLabel(name), null, name);
  });
});

describe('endpoint backends in compiled VCL', () => {
  function ir(services: number): RoutingIR {
    return {
      version: IR_VERSION,
      sockets: [{
        name: 'a127_0_0_1_80',
        address: '127.0.0.1',
        port: 80,
        vhosts: [{
          hostname: 'app.test',
          listener: 'ns/gw/http',
          routes: [{
            id: 'ns/r/0/0',
            match: { path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] },
            action: { backends: Array.from({ length: services }, (_, i) => ({ weight: 1, service: i })) },
          }],
        }],
      }],
      services: Array.from({ length: services }, (_, i) => ({ namespace: 'ns', name: `svc${i}`, port: 80, portName: '' })),
    };
  }
  const endpoints = (...lists: IREndpoint[][]): EndpointMap => new Map(lists.map((l, i) => [`ns/svc${i}:80`, l]));
  const declarations = (vcl: string) => vcl.split('\n').filter((l) => l.startsWith('backend vgw_e'));

  test('one backend per address:port, named after it and shared across Services', () => {
    const { vcl, stats } = compileVcl(
      ir(2),
      endpoints(
        [{ address: '10.1.2.3', port: 8080 }, { address: 'fd00::1', port: 80 }],
        [{ address: '10.1.2.3', port: 8080 }, { address: '10.1.2.3', port: 8081 }],
      ),
    );
    assert.deepEqual(declarations(vcl), [
      'backend vgw_e4_10_1_2_3_8080 { .host = "10.1.2.3"; .port = "8080"; }',
      'backend vgw_e6_fd00__1_80 { .host = "fd00::1"; .port = "80"; }',
      'backend vgw_e4_10_1_2_3_8081 { .host = "10.1.2.3"; .port = "8081"; }',
    ]);
    assert.equal(stats.backends, 3);
    assert.match(vcl, /vgw_s0\.add_backend\(vgw_e4_10_1_2_3_8080\);\n\s*vgw_s0\.add_backend\(vgw_e6_fd00__1_80\);/);
    assert.match(vcl, /vgw_s1\.add_backend\(vgw_e4_10_1_2_3_8080\);\n\s*vgw_s1\.add_backend\(vgw_e4_10_1_2_3_8081\);/);
  });

  test('the same endpoint has the same name whatever else the VCL holds', () => {
    const alone = compileVcl(ir(1), endpoints([{ address: '10.0.0.9', port: 80 }])).vcl;
    const after = compileVcl(ir(1), endpoints([{ address: '10.0.0.1', port: 80 }, { address: '10.0.0.2', port: 80 }, { address: '10.0.0.9', port: 80 }])).vcl;
    assert.ok(declarations(alone).every((d) => declarations(after).includes(d)));
  });

  test('two spellings of one IPv6 address: one backend, added once to its Service', () => {
    const { vcl, stats } = compileVcl(ir(1), endpoints([{ address: 'FD00:0::1', port: 80 }, { address: 'fd00::1', port: 80 }]));
    assert.deepEqual(declarations(vcl), ['backend vgw_e6_fd00__1_80 { .host = "fd00::1"; .port = "80"; }']);
    assert.equal(stats.backends, 1);
    assert.equal(vcl.match(/add_backend\(vgw_e6_fd00__1_80\)/g)?.length, 1);
  });

  test('an address that is not an IP literal falls back to numbered names', () => {
    const { vcl } = compileVcl(ir(1), endpoints([{ address: 'a.example', port: 80 }, { address: '10.0.0.1', port: 80 }, { address: 'b.example', port: 80 }]));
    assert.deepEqual(declarations(vcl), [
      'backend vgw_e0 { .host = "a.example"; .port = "80"; }',
      'backend vgw_e4_10_0_0_1_80 { .host = "10.0.0.1"; .port = "80"; }',
      'backend vgw_e1 { .host = "b.example"; .port = "80"; }',
    ]);
    assert.equal(backendLabel('vgw_e0'), null);
  });
});
