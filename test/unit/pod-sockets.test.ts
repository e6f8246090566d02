// The sockets a gateway pod listens on: exactly its own ports, whatever listeners the
// published config has, so a listener added or removed is never a varnishd restart.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { IRSocket, RoutingIR } from '../../src/ir/types.ts';
import { podSockets, unroutedSocketName } from '../../src/chaperone/pod-sockets.ts';

const ADDRESS = '127.0.94.10';
const vhost = (hostname: string) => ({ hostname, listener: `edge/gw/${hostname}`, routes: [] });
const socket = (name: string, port: number, hosts: string[] = ['a.example']): IRSocket => ({ name, address: ADDRESS, port, vhosts: hosts.map(vhost) });
const config = (...sockets: IRSocket[]): RoutingIR => ({ version: 4, sockets, services: [] }) as unknown as RoutingIR;
const summary = (ir: RoutingIR) => ir.sockets.map((s) => `${s.name}=${s.address}:${s.port}/${s.vhosts.length}`);

test('every port of the pod and no other: a config socket on another port is left out', () => {
  const r = podSockets(config(socket('http', 8080), socket('extra', 9090)), [8080], ADDRESS, new Map());
  assert.deepEqual(summary(r.ir), [`http=${ADDRESS}:8080/1`]);
  assert.deepEqual([r.leftOut, r.unrouted], [[9090], []]);
});

test('a removed listener keeps its socket, under the name it had, routing nothing', () => {
  const first = podSockets(config(socket('http', 8080), socket('extra', 9090)), [8080, 9090], ADDRESS, new Map());
  const names = new Map(first.ir.sockets.map((s) => [s.port, s.name]));
  const removed = podSockets(config(socket('extra', 9090)), [8080, 9090], ADDRESS, names);
  assert.deepEqual(summary(removed.ir), [`http=${ADDRESS}:8080/0`, `extra=${ADDRESS}:9090/1`]);
  assert.deepEqual(removed.ir.sockets.map(({ name, address, port }) => ({ name, address, port })), first.ir.sockets.map(({ name, address, port }) => ({ name, address, port })), 'the same listeners: a VCL reload, not a restart');
  assert.deepEqual([removed.leftOut, removed.unrouted], [[], [8080]]);
});

test('sockets follow the order of the pod ports, not of the config', () => {
  const r = podSockets(config(socket('extra', 9090), socket('http', 8080)), [8080, 9090], ADDRESS, new Map());
  assert.deepEqual(r.ir.sockets.map((s) => s.port), [8080, 9090]);
});

test('a pod port the config never had gets a socket of its own name', () => {
  const r = podSockets(config(), [8080, 8080], ADDRESS, new Map());
  assert.deepEqual(summary(r.ir), [`${unroutedSocketName(8080)}=${ADDRESS}:8080/0`]);
  assert.deepEqual(r.unrouted, [8080]);
});
