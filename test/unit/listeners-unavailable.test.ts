// Listen sockets the runtime cannot bind reach the translator as data: the listener on one is
// reported PortUnavailable / Pending and gets no socket, routes stay attached, the rest is unchanged.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { socketKey } from '../../src/gatewayapi/listeners.ts';
import { translate } from '../../src/gatewayapi/translator.ts';
import { DEFAULT_ADDRESS, NOW, gatewayStatus, listener, listenerStatus, parentRef, route, simpleWorld } from './fixtures/builders.ts';

const snapshot = simpleWorld(
  [listener('busy', { port: 8081 }), listener('free', { port: 8082 })],
  [route('on-busy', { parentRefs: [parentRef('gw', { sectionName: 'busy' })] }), route('on-free', { parentRefs: [parentRef('gw', { sectionName: 'free' })] })],
);

test('a listener on an unavailable socket: PortUnavailable, Pending, no socket; the rest unchanged', () => {
  const unavailable = new Map([[socketKey(DEFAULT_ADDRESS, 8081), 'in use by another process']]);
  const r = translate(snapshot, { defaultAddress: DEFAULT_ADDRESS, now: NOW, unavailableSockets: unavailable });
  const busy = listenerStatus(r, 'busy');
  const cond = (type: string) => busy.conditions.find((c) => c.type === type);
  assert.deepEqual([cond('Accepted')?.status, cond('Accepted')?.reason], ['False', 'PortUnavailable']);
  assert.deepEqual([cond('Programmed')?.status, cond('Programmed')?.reason], ['False', 'Pending']);
  assert.match(cond('Accepted')?.message ?? '', /127\.0\.0\.1:8081 \(in use by another process\)/);
  assert.equal(busy.attachedRoutes, 1, 'routes stay attached');
  const gwProgrammed = gatewayStatus(r).conditions.find((c) => c.type === 'Programmed');
  assert.deepEqual([gwProgrammed?.status, gwProgrammed?.reason], ['False', 'Pending']);
  assert.equal(gatewayStatus(r).conditions.find((c) => c.type === 'Accepted')?.status, 'True');
  assert.deepEqual(r.ir.sockets.map((s) => s.port), [8082]);
  assert.deepEqual(r.leftOutSockets, [{ address: DEFAULT_ADDRESS, port: 8081 }]);
  assert.equal(listenerStatus(r, 'free').conditions.find((c) => c.type === 'Programmed')?.status, 'True');

  const all = translate(snapshot, { defaultAddress: DEFAULT_ADDRESS, now: NOW });
  assert.deepEqual(all.ir.sockets.map((s) => s.port), [8081, 8082]);
  assert.deepEqual(all.leftOutSockets, []);
  // The free listener's part of the config is the same either way.
  assert.deepEqual(r.ir.sockets[0], all.ir.sockets[1]);
});

test('IPv6 socket keys are bracketed', () => {
  assert.equal(socketKey('::1', 80), '[::1]:80');
  assert.equal(socketKey('127.0.0.1', 80), '127.0.0.1:80');
});
