// Property C: the route varnishd picks for a request is the one the reference evaluator
// (src/ir/route-request.ts) picks from the IR. One StandaloneServer serves every generated
// config in turn (only the routes file changes, so varnishd never restarts); each rule's only
// backend is its own echo Service, whose pod name says which rule answered.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { startEchoServer, type EchoServer } from '../../src/echo/server.ts';
import { routeRequest, type RequestToRoute } from '../../src/ir/route-request.ts';
import type { RoutingIR } from '../../src/ir/types.ts';
import { render } from '../../src/pipeline/render.ts';
import { loadManifestDir } from '../../src/providers/file/load.ts';
import { StandaloneServer } from '../../src/standalone/server.ts';
import { silentLogger } from '../../src/util/log.ts';
import { GATEWAY_CLASS, yamlDocs } from '../integration/support/manifests.ts';
import { clean, GATEWAY, LOOPBACK, NS } from './arbitraries.ts';

export const GW_ADDRESS = `${LOOPBACK}.1`;
export const PORTS = [27080, 27081];
/** Echo backends (and so rules per config): 127.0.27.10 upwards. */
const POOL = 12;

const ROUTE_HOSTS = ['a.test', 'b.test', 'x.a.test', '*.a.test', '*.w.test', 'foo.l.test'];
const REQUEST_HOSTS = ['a.test', 'A.Test', 'a.test:27080', 'a.test:', 'a.test.', 'b.test', 'x.a.test', 'y.x.a.test', 'q.a.test', '*.a.test', 'z.w.test', 'deep.x.w.test', 'foo.l.test', 'bar.l.test', 'l.test', 'unknown.test'];
const PATHS = ['/', '/a', '/a/', '/a/b', '/api', '/api/v1', '/b', '/A', '/a.b', '/~u', '/x%20y'];
const REGEXES = ['/a/.*', '/[a-z]+', '/(a|b)/[0-9]+', '/v[0-9]/.*', '.*', '/a[.]b', '/x{1,3}', '/(api|b)(/.*)?'];
const HEADERS = ['X-A', 'x-b'];
const HEADER_VALUES = ['1', 'yes', 'a b', 'Q'];
const QUERY_NAMES = ['q', 'id', 'Q'];
const QUERY_VALUES = ['1', 'x', '%20', ''];
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH'];

const valueMatch = (names: string[], values: string[], regexes: string[]) =>
  fc.oneof(
    fc.record({ type: fc.constant('Exact'), name: fc.constantFrom(...names), value: fc.constantFrom(...values) }),
    fc.record({ type: fc.constant('RegularExpression'), name: fc.constantFrom(...names), value: fc.constantFrom(...regexes) }),
  );

const matchArb = fc.record(
  {
    path: fc.oneof(
      fc.record({ type: fc.constantFrom('Exact', 'PathPrefix'), value: fc.constantFrom(...PATHS) }),
      fc.record({ type: fc.constant('RegularExpression'), value: fc.constantFrom(...REGEXES) }),
    ),
    headers: fc.uniqueArray(valueMatch(HEADERS, HEADER_VALUES, ['[0-9]+', 'y.*', '(a|b) b']), { maxLength: 2, selector: (h) => h.name.toLowerCase() }),
    queryParams: fc.uniqueArray(valueMatch(QUERY_NAMES, QUERY_VALUES, ['[0-9]+', 'x?', '.*']), { maxLength: 2, selector: (q) => q.name }),
    method: fc.constantFrom(...METHODS),
  },
  { requiredKeys: [] },
);

export interface RoutingCase {
  routes: { hostnames: string[]; parentRef: object; rules: { matches: object[] }[] }[];
  requests: (RequestToRoute & { port: number })[];
}

const routesArb = fc.array(
  fc.record({
    hostnames: fc.subarray(ROUTE_HOSTS, { maxLength: 2 }),
    parentRef: fc.constantFrom({ name: GATEWAY }, { name: GATEWAY }, { name: GATEWAY, sectionName: 'other' }, { name: GATEWAY, port: 27081 }),
    rules: fc.array(fc.record({ matches: fc.array(matchArb, { maxLength: 3 }) }), { minLength: 1, maxLength: 3 }),
  }),
  { minLength: 1, maxLength: 4 },
).filter((rs) => rs.reduce((n, r) => n + r.rules.length, 0) <= POOL);

// Spellings of a path that normalisation must see through, or refuse.
const segment = fc.constantFrom('a', 'b', 'api', 'v1', 'x', '1', '.', '..', '', '%61', '%2e', '%2E%2E', 'A', '~u', 'a%2Fb', 'a\\b', '%00', '%5c', '%zz', 'x%20y', '%7E');
const pathArb = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...PATHS, '/x/../admin', '//a', '/a/%2e%2e/b', '/%61/b', '/a/./b/', '/a//b', '/api/v1/../v1') },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom(...PATHS), fc.array(segment, { maxLength: 3 })).map(([p, s]) => (s.length ? `${p.replace(/\/$/, '')}/${s.join('/')}` : p)) },
  { weight: 1, arbitrary: fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => `/${s.join('/')}`) },
);
const queryArb = fc.array(fc.tuple(fc.constantFrom(...QUERY_NAMES, 'z'), fc.constantFrom(...QUERY_VALUES, '2', 'x?')), { maxLength: 3 }).map((qs) => (qs.length ? `?${qs.map(([k, v]) => `${k}=${v}`).join('&')}` : ''));
const requestArb = fc.record({
  host: fc.constantFrom(...REQUEST_HOSTS),
  target: fc.tuple(pathArb, queryArb).map(([p, q]) => p + q),
  method: fc.constantFrom(...METHODS),
  headers: fc.array(fc.tuple(fc.constantFrom('X-A', 'x-a', 'x-b', 'X-B'), fc.constantFrom(...HEADER_VALUES, '2', 'yy')), { maxLength: 3 }),
  port: fc.constantFrom(...PORTS),
});

export const routingCaseArb = (requests: number): fc.Arbitrary<RoutingCase> =>
  fc.record({ routes: routesArb, requests: fc.array(requestArb, { minLength: requests, maxLength: requests }) });

/** The HTTPRoutes of a case; rule k (counted across routes) sends to svc-k. */
export function caseManifests(c: RoutingCase): { objects: object[]; serviceOfRule: Map<string, number> } {
  const serviceOfRule = new Map<string, number>();
  let k = 0;
  const objects = c.routes.map((r, i) => ({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: `route-${i}`, namespace: NS },
    spec: {
      parentRefs: [r.parentRef],
      hostnames: r.hostnames,
      rules: r.rules.map((rule, ruleIndex) => {
        serviceOfRule.set(`${NS}/route-${i}/${ruleIndex}`, k);
        return clean({ matches: rule.matches.length ? rule.matches : undefined, backendRefs: [{ name: `svc-${k++}`, port: 80 }] });
      }),
    },
  }));
  return { objects, serviceOfRule };
}

interface Answer {
  status: number;
  body: string;
}

/** One request, written byte for byte (no client-side normalisation), on its own connection. */
function send(port: number, r: RequestToRoute): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: GW_ADDRESS, port });
    const chunks: Buffer[] = [];
    socket.setTimeout(10_000, () => socket.destroy(new Error('timeout')));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const head = text.slice(0, text.indexOf('\r\n\r\n'));
      let body = text.slice(head.length + 4);
      if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) body = dechunk(body);
      resolve({ status: Number(/^HTTP\/1\.\d (\d{3})/.exec(head)?.[1] ?? 0), body });
    });
    const lines = [`${r.method} ${r.target} HTTP/1.1`, `Host: ${r.host}`, ...r.headers.map(([n, v]) => `${n}: ${v}`), 'Content-Length: 0', 'Connection: close'];
    socket.end(`${lines.join('\r\n')}\r\n\r\n`);
  });
}

function dechunk(body: string): string {
  let out = '';
  for (let i = 0; ;) {
    const eol = body.indexOf('\r\n', i);
    const size = parseInt(body.slice(i, eol), 16);
    if (!size) return out;
    out += body.slice(eol + 2, eol + 2 + size);
    i = eol + 2 + size + 2;
  }
}

/** A gateway on 127.0.27.1:27080 and :27081 and POOL echo backends, reused across cases. */
export class RoutingWorld {
  private dir = '';
  private server: StandaloneServer | null = null;
  private echoes: EchoServer[] = [];

  async start(): Promise<void> {
    this.dir = await mkdtemp(join(tmpdir(), 'vgw-fuzz-routing-'));
    for (let i = 0; i < POOL; i++) this.echoes.push(await startEchoServer({ port: 0, address: `${LOOPBACK}.${10 + i}`, pod: `svc-${i}-pod`, namespace: NS }));
    const base: object[] = [
      GATEWAY_CLASS,
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'Gateway',
        metadata: { name: GATEWAY, namespace: NS },
        spec: {
          gatewayClassName: 'vgw',
          addresses: [{ type: 'IPAddress', value: GW_ADDRESS }],
          listeners: [
            { name: 'http', protocol: 'HTTP', port: PORTS[0] },
            { name: 'wild', protocol: 'HTTP', port: PORTS[0], hostname: '*.l.test' },
            { name: 'other', protocol: 'HTTP', port: PORTS[1] },
          ],
        },
      },
    ];
    this.echoes.forEach((e, i) => {
      const port = Number(new URL(e.url).port);
      base.push(
        { apiVersion: 'v1', kind: 'Service', metadata: { name: `svc-${i}`, namespace: NS }, spec: { ports: [{ name: 'http', port: 80, targetPort: port }] } },
        {
          apiVersion: 'discovery.k8s.io/v1',
          kind: 'EndpointSlice',
          metadata: { name: `svc-${i}-1`, namespace: NS, labels: { 'kubernetes.io/service-name': `svc-${i}` } },
          addressType: 'IPv4',
          ports: [{ name: 'http', port }],
          endpoints: [{ addresses: [`${LOOPBACK}.${10 + i}`] }],
        },
      );
    });
    await writeFile(join(this.dir, 'base.yaml'), yamlDocs(base));
    this.server = new StandaloneServer({ dir: this.dir, defaultAddress: GW_ADDRESS, logger: silentLogger() });
    await this.server.start();
  }

  /** Serves the case's routes; resolves once that config is live, with its IR. */
  async apply(objects: object[]): Promise<RoutingIR> {
    await writeFile(join(this.dir, 'routes.yaml'), yamlDocs(objects));
    await this.server!.schedule();
    const err = this.server!.state.lastError;
    if (err) throw new Error(`the gateway did not take the config: ${err.message}`);
    const { snapshot } = await loadManifestDir(this.dir);
    return render(snapshot, { defaultAddress: GW_ADDRESS, now: '2024-01-01T00:00:00Z' }).ir;
  }

  /** Property C for one case: every request's answer is the evaluator's. */
  async check(c: RoutingCase): Promise<void> {
    const { objects, serviceOfRule } = caseManifests(c);
    const ir = await this.apply(objects);
    for (const r of c.requests) {
      const socket = ir.sockets.find((s) => s.port === r.port);
      const decision = socket ? routeRequest(ir, socket.name, r) : { kind: 'status' as const, status: 404 as const, reason: 'no socket' };
      const expected = decision.kind === 'route' ? `svc-${serviceOfRule.get(decision.id.split('/').slice(0, 3).join('/'))}-pod` : `status ${decision.status}`;
      const got = await send(r.port, r);
      let actual = `status ${got.status}`;
      if (got.status === 200) {
        try {
          actual = (JSON.parse(got.body) as { pod: string }).pod;
        } catch {
          actual = `status 200, not an echo body: ${got.body.slice(0, 80)}`;
        }
      }
      if (actual !== expected) {
        const why = decision.kind === 'route' ? `route ${decision.id}` : decision.reason;
        throw new Error(`request ${JSON.stringify(r)}: varnishd answered ${actual}, the evaluator expects ${expected} (${why})`);
      }
    }
  }

  async stop(): Promise<void> {
    await this.server?.stop();
    for (const e of this.echoes) await e.close();
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }
}
