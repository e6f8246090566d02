// Smoke test of the container image (build/image/oci, made by `npm run image`): its root
// filesystem, unpacked with umoci, is run the way the gateway pods run it: read-only root, the
// image's user 65532, only NET_BIND_SERVICE, tmpfs on /tmp and on the work dir /var/lib/vgw.
// Inside it `vgw serve` serves a Gateway on 127.0.96.1:80 in front of `vgw echo` on 127.0.96.2,
// varnishd compiling the VCL with tcc (gcc is not in the image). Needs root (mount, chroot).
//
//   npm run image:smoke      builds the image (base layer cached), then runs this file
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { eventually } from '../integration/support/poll.ts';
import { TCC_COMMAND } from '../../src/varnish/cc.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const LAYOUT = join(ROOT, 'build/image/oci');
const GATEWAY_ADDRESS = '127.0.96.1';
const BACKEND_ADDRESS = '127.0.96.2';
const ADMIN_PORT = 9901;
const USER = 65532;
const CAP_NET_BIND_SERVICE = 1n << 10n;

const MANIFESTS = `
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: vgw }
spec: { controllerName: vgw.dev/gateway-controller }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: smoke, namespace: default }
spec:
  gatewayClassName: vgw
  addresses: [{ type: IPAddress, value: ${GATEWAY_ADDRESS} }]
  listeners: [{ name: http, protocol: HTTP, port: 80 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: smoke, namespace: default }
spec:
  parentRefs: [{ name: smoke }]
  hostnames: [smoke.example.com]
  rules: [{ backendRefs: [{ name: echo, port: 80 }] }]
---
apiVersion: v1
kind: Service
metadata: { name: echo, namespace: default }
spec: { ports: [{ name: http, port: 80, targetPort: 8080 }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: echo-1, namespace: default, labels: { kubernetes.io/service-name: echo } }
addressType: IPv4
ports: [{ name: http, port: 8080 }]
endpoints: [{ addresses: ["${BACKEND_ADDRESS}"], conditions: { ready: true } }]
`;

// Runs as root in a private mount and PID namespace: mounts the rootfs read-only with /proc,
// /dev and the tmpfs volumes, then execs the command in it as the image's user with nothing but
// NET_BIND_SERVICE (ambient, so varnishd inherits it). With SMOKE_ECHO=1 the echo backend starts
// first. The command is exec'd so tini is PID 1, as in a container.
const IN_IMAGE = `
set -eu
r=$1; manifests=$2; shift 2
mount --bind "$r" "$r"
mount -o remount,bind,ro "$r"
mount -t proc proc "$r/proc"
mount --rbind /dev "$r/dev"
mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"
mount -t tmpfs -o uid=${USER},gid=${USER},mode=0755 tmpfs "$r/var/lib/vgw"
mount --bind -o ro "$manifests" "$r/srv"
# Unquoted on use: plain words, split into the command's arguments.
drop="setpriv --reuid=${USER} --regid=${USER} --clear-groups --no-new-privs --bounding-set=-all,+net_bind_service
  --inh-caps=-all,+net_bind_service --ambient-caps=-all,+net_bind_service
  env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/home/vgw NODE_ENV=production"
if [ "\${SMOKE_ECHO:-}" = 1 ]; then chroot "$r" $drop vgw echo --address ${BACKEND_ADDRESS} --port 8080 --pod smoke-echo & fi
# Replaces this shell, so the command (tini) is PID 1 of the namespace, as in a container.
exec chroot "$r" $drop "$@"
`;

let dir = '';
let rootfs = '';
let serving: ChildProcess | undefined;

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 16 << 20 });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

function inImage(args: string[], env: Record<string, string> = {}) {
  return spawn('unshare', ['--mount', '--pid', '--fork', '--kill-child', 'sh', '-c', IN_IMAGE, 'in-image', rootfs, join(dir, 'manifests'), ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

async function runInImage(args: string[]): Promise<{ code: number | null; out: string }> {
  const child = inImage(args);
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c));
  child.stderr!.on('data', (c: Buffer) => (out += c));
  const code = await new Promise<number | null>((res) => child.on('exit', res));
  return { code, out };
}

function blob(digest: string): unknown {
  return JSON.parse(readFileSync(join(LAYOUT, 'blobs/sha256', digest.replace(/^sha256:/, '')), 'utf8'));
}

function get(host: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((res, rej) => {
    const req = request({ host: GATEWAY_ADDRESS, port: 80, path, headers: { host }, timeout: 5000 }, (resp) => {
      let body = '';
      resp.setEncoding('utf8');
      resp.on('data', (c: string) => (body += c));
      resp.on('end', () => res({ status: resp.statusCode ?? 0, body }));
    });
    req.on('error', rej);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

/** Processes under `pid` (itself excluded), from /proc. */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

before(() => {
  assert.equal(process.getuid?.(), 0, 'the image smoke test needs root (mount, chroot)');
  assert.ok(existsSync(join(LAYOUT, 'index.json')), `no image at ${LAYOUT}: run npm run image first`);
  dir = mkdtempSync(join(tmpdir(), 'vgw-image-smoke-'));
  mkdirSync(join(dir, 'manifests'));
  writeFileSync(join(dir, 'manifests/smoke.yaml'), MANIFESTS);
  run('umoci', ['unpack', '--image', `${LAYOUT}:${VERSION}`, join(dir, 'bundle')]);
  rootfs = join(dir, 'bundle/rootfs');
});

after(async () => {
  if (serving && serving.exitCode === null && serving.signalCode === null) {
    // Killing PID 1 of the namespace (tini) takes everything in it down. unshare's --kill-child
    // does not reach it: setpriv's change of user clears the parent-death signal.
    const exited = new Promise((res) => serving!.once('exit', res));
    const [init] = descendants(serving.pid!);
    if (init !== undefined) process.kill(init, 'SIGKILL');
    else serving.kill('SIGKILL');
    await exited;
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('image config runs tini -- vgw as the numeric non-root user the Deployments expect', () => {
  const index = JSON.parse(readFileSync(join(LAYOUT, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
  const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === VERSION);
  assert.ok(entry, `tag ${VERSION} in the image layout`);
  const manifest = blob(entry.digest) as { config: { digest: string }; layers: unknown[] };
  assert.equal(manifest.layers.length, 3);
  const config = blob(manifest.config.digest) as { config: { User: string; Entrypoint: string[]; Labels: Record<string, string> } };
  assert.equal(config.config.User, `${USER}:${USER}`);
  assert.deepEqual(config.config.Entrypoint, ['tini', '--', 'vgw']);
  assert.equal(config.config.Labels['org.opencontainers.image.version'], VERSION);
  assert.match(config.config.Labels['org.opencontainers.image.revision'], /^[0-9a-f]{40}$/);
});

test('root filesystem: tcc and no gcc, stunnel and no perl or systemd, node 24 and vgw on PATH, the user and its work dir', () => {
  // perl-base (/usr/bin/perl) is Essential in every Debian and stays; the perl package and its
  // libperl are what stunnel4's stunnel3 wrapper would have pulled in.
  const absent = ['usr/bin/gcc', 'usr/bin/cpp', 'usr/bin/ld', 'usr/bin/as', 'etc/varnish/secret', 'var/lib/apt/lists/lock',
    'usr/bin/stunnel3', 'usr/bin/perldoc', 'usr/bin/cpan', 'usr/lib/x86_64-linux-gnu/libperl.so.5.36',
    'usr/bin/systemctl', 'usr/bin/journalctl', 'usr/lib/systemd/systemd'];
  for (const path of absent) {
    assert.ok(!existsSync(join(rootfs, path)), `${path} is not in the image`);
  }
  for (const present of ['usr/bin/tcc', 'usr/bin/tini', 'usr/sbin/varnishd', 'usr/bin/varnishlog', 'usr/bin/varnishncsa',
    'usr/bin/stunnel4', 'usr/bin/stunnel', 'usr/local/bin/node', 'usr/local/bin/vgw']) {
    assert.ok(existsSync(join(rootfs, present)), `${present} is in the image`);
  }
  assert.match(readFileSync(join(rootfs, 'etc/passwd'), 'utf8'), new RegExp(`^vgw:x:${USER}:${USER}:`, 'm'));
  const work = statSync(join(rootfs, 'var/lib/vgw'));
  assert.equal(work.uid, USER);
  assert.ok(!existsSync(join(rootfs, 'usr/share/man')) || readdirSync(join(rootfs, 'usr/share/man')).length === 0, 'no man pages');
});

test('the image default command prints the usage, vgw operator --help exits 0, and the operator loads with its dependencies', async () => {
  const help = await runInImage(['tini', '--', 'vgw', '--help']);
  assert.equal(help.code, 0, help.out);
  assert.match(help.out, /^ {2}operator /m);
  // `vgw operator` imports the Kubernetes client before it parses its flags: a usage error
  // naming the flag shows that the operator and its production dependencies load in the image.
  const operator = await runInImage(['tini', '--', 'vgw', 'operator', '--no-such-flag']);
  assert.equal(operator.code, 2, operator.out);
  assert.match(operator.out, /^vgw: Unknown option '--no-such-flag'/m);
  const operatorHelp = await runInImage(['tini', '--', 'vgw', 'operator', '--help']);
  assert.equal(operatorHelp.code, 0, operatorHelp.out);
  assert.match(operatorHelp.out, /^ {2}operator /m);
});

test('stunnel runs inside the image as 65532 on the read-only root (it originates backend TLS)', async () => {
  // `stunnel -version` loads libssl and prints its build to stderr; the exit code differs between
  // builds, so the output is what shows it ran.
  const version = await runInImage(['tini', '--', 'stunnel', '-version']);
  assert.match(version.out, /^stunnel 5\.\d+ on /m, `stunnel -version (exit ${version.code}): ${version.out}`);
  assert.match(version.out, /^Running +with OpenSSL 3\./m, version.out);
});

test('vgw serve inside the image: 200 through varnishd on :80, VCL compiled by tcc, all as 65532 with only NET_BIND_SERVICE', async () => {
  serving = inImage(['tini', '--', 'vgw', 'serve', '/srv', '--work-dir', '/var/lib/vgw/serve', '--admin-address', GATEWAY_ADDRESS, '--admin-port', String(ADMIN_PORT)], { SMOKE_ECHO: '1' });
  let log = '';
  serving.stdout!.on('data', (c: Buffer) => (log = (log + c).slice(-20_000)));
  serving.stderr!.on('data', (c: Buffer) => (log = (log + c).slice(-20_000)));
  serving.on('exit', (code) => (log += `\n[exited ${code}]`));

  let body = '';
  await eventually('a 200 from the echo backend through the gateway', async () => {
    if (serving!.exitCode !== null) assert.fail(`vgw serve exited: ${log}`);
    const r = await get('smoke.example.com', '/hello');
    body = r.body;
    return r.status === 200;
  }, 90_000, 200).catch((err: Error) => assert.fail(`${err.message}\n${log}`));
  assert.equal((JSON.parse(body) as { pod: string }).pod, 'smoke-echo');

  const procs = descendants(serving.pid!).flatMap((pid) => {
    try {
      return [{ pid, status: readFileSync(`/proc/${pid}/status`, 'utf8'), cmdline: readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0') }];
    } catch {
      return [];
    }
  });
  const varnishd = procs.filter((p) => p.cmdline[0].endsWith('varnishd'));
  assert.ok(varnishd.length > 0, 'varnishd runs');
  const ccParam = varnishd[0].cmdline.indexOf(`cc_command=${TCC_COMMAND}`);
  assert.ok(ccParam > 0, `varnishd was started with cc_command=${TCC_COMMAND}: ${varnishd[0].cmdline.join(' ')}`);
  // Everything in the image runs as the image's user and holds NET_BIND_SERVICE at most.
  const inside = procs.filter((p) => /^Uid:\s+65532\b/m.test(p.status));
  assert.ok(inside.length >= 4, 'tini, vgw serve, vgw echo and varnishd run as 65532');
  for (const p of procs) {
    const name = /^Name:\s+(.*)$/m.exec(p.status)![1];
    if (name === 'unshare' || name === 'sh' || name === 'chroot' || name === 'setpriv' || name === 'mount') continue;
    assert.match(p.status, /^Uid:\s+65532\s+65532\s+65532\s+65532$/m, `${name} (${p.pid}) runs as 65532`);
    const capEff = BigInt('0x' + /^CapEff:\s+([0-9a-f]+)$/m.exec(p.status)![1]);
    assert.equal(capEff & ~CAP_NET_BIND_SERVICE, 0n, `${name} (${p.pid}) has no capability but NET_BIND_SERVICE`);
  }
});
