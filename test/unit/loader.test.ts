// The file provider: a directory tree of YAML/JSON manifests -> ResourceSnapshot. Any file that
// cannot be read or parsed fails a one-shot load with file and line (vgw serve keeps that file at its
// last good content instead); an object that parses but fails its schema is rejected alone.
import { test, describe, after } from 'node:test';
import { spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ManifestLoadError, ManifestLoader, formatManifestError, listManifestFiles, loadManifestDir, parseManifestText, type ManifestError } from '../../src/providers/file/load.ts';
import { formatRejected } from '../../src/gatewayapi/types.ts';
import { MANIFEST_LIMITS } from '../../src/providers/file/limits.ts';
import { routeManifest } from '../../bench/lib/manifests.ts';
import { prng } from '../support/prng.ts';

const root = mkdtempSync(join(tmpdir(), 'vgw-loader-test-'));
after(() => rmSync(root, { recursive: true, force: true }));

let counter = 0;
/** A fresh directory holding `files` (relative path -> content). */
function dir(files: Record<string, string>): string {
  const d = join(root, `case-${++counter}`);
  mkdirSync(d);
  for (const [rel, content] of Object.entries(files)) {
    const p = join(d, rel);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, content);
  }
  return d;
}

async function loadError(d: string): Promise<ManifestLoadError> {
  try {
    await loadManifestDir(d);
  } catch (err) {
    assert.ok(err instanceof ManifestLoadError, `expected ManifestLoadError, got ${String(err)}`);
    return err;
  }
  assert.fail('the load should have failed');
}

const GATEWAY = (name: string, ns?: string) => `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: ${name}${ns ? `\n  namespace: ${ns}` : ''}
spec:
  gatewayClassName: vgw
  listeners:
  - name: http
    port: 80
    protocol: HTTP
`;

describe('loadManifestDir', () => {
  test('multi-document YAML: every document is read, empty documents are skipped', async () => {
    const d = dir({
      'all.yaml': `---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: vgw
spec:
  controllerName: vgw.dev/gateway-controller
---
# only a comment
---
${GATEWAY('gw', 'infra')}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: r
  namespace: infra
spec:
  parentRefs: [{name: gw}]
---
apiVersion: v1
kind: Service
metadata: {name: svc, namespace: infra}
spec:
  ports: [{port: 8080}]
---
`,
    });
    const { snapshot, files } = await loadManifestDir(d);
    assert.equal(files.length, 1);
    assert.deepEqual(snapshot.gatewayClasses.map((o) => o.metadata.name), ['vgw']);
    assert.deepEqual(snapshot.gateways.map((o) => `${o.metadata.namespace}/${o.metadata.name}`), ['infra/gw']);
    assert.deepEqual(snapshot.httpRoutes.map((o) => o.metadata.name), ['r']);
    assert.deepEqual(snapshot.services.map((o) => o.spec.ports), [[{ port: 8080 }]]);
    assert.equal(snapshot.gateways[0].spec.listeners[0].port, 80);
  });

  test('JSON files, .yml files and nested directories are read; other files and dotfiles are not', async () => {
    const d = dir({
      'a/b/c/gw.json': JSON.stringify({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'from-json' }, spec: { gatewayClassName: 'vgw', listeners: [] } }),
      'a/gw.yml': GATEWAY('from-yml'),
      'z.yaml': GATEWAY('from-yaml'),
      'notes.txt': GATEWAY('from-txt'),
      'a/.hidden.yaml': GATEWAY('from-hidden'),
      'README.md': '# not a manifest',
    });
    const { snapshot, files } = await loadManifestDir(d);
    assert.deepEqual(snapshot.gateways.map((g) => g.metadata.name).sort(), ['from-json', 'from-yaml', 'from-yml']);
    assert.equal(files.length, 3);
    assert.deepEqual(files, [...files].sort(), 'files are listed in a stable order');
    assert.deepEqual(await listManifestFiles(d), files);
  });

  test('a kind: List is unpacked into its items', async () => {
    const d = dir({
      'list.yaml': `apiVersion: v1
kind: List
items:
- ${GATEWAY('one').trim().split('\n').join('\n  ')}
- apiVersion: v1
  kind: Service
  metadata: {name: svc}
  spec: {ports: [{port: 80}]}
`,
      'list.json': JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'apps', labels: { team: 'a' } } }] }),
    });
    const { snapshot } = await loadManifestDir(d);
    assert.deepEqual(snapshot.gateways.map((g) => g.metadata.name), ['one']);
    assert.deepEqual(snapshot.services.map((s) => s.metadata.name), ['svc']);
    assert.deepEqual(snapshot.namespaces.map((n) => [n.metadata.name, n.metadata.labels]), [['apps', { team: 'a' }]]);
  });

  test('namespaced objects default to namespace "default"; cluster-scoped ones carry none', async () => {
    const d = dir({
      'x.yaml': `${GATEWAY('gw')}---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: vgw, namespace: ignored}
spec: {controllerName: vgw.dev/gateway-controller}
---
apiVersion: v1
kind: Namespace
metadata: {name: apps}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: svc-abc
  labels: {kubernetes.io/service-name: svc}
addressType: IPv4
endpoints: [{addresses: [10.0.0.1]}]
`,
    });
    const { snapshot } = await loadManifestDir(d);
    assert.equal(snapshot.gateways[0].metadata.namespace, 'default');
    assert.equal(snapshot.endpointSlices[0].metadata.namespace, 'default');
    assert.equal(snapshot.gatewayClasses[0].metadata.namespace, undefined);
    assert.equal(snapshot.namespaces[0].metadata.namespace, undefined);
  });

  test('metadata.generation defaults to 1 and is kept when given; creationTimestamp stays a string', async () => {
    const d = dir({
      'x.yaml': `${GATEWAY('a')}---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: b
  generation: 5
  creationTimestamp: 2024-01-02T03:04:05Z
spec: {gatewayClassName: vgw, listeners: []}
`,
    });
    const { snapshot } = await loadManifestDir(d);
    const byName = Object.fromEntries(snapshot.gateways.map((g) => [g.metadata.name, g.metadata]));
    assert.equal(byName.a.generation, 1);
    assert.equal(byName.b.generation, 5);
    assert.equal(typeof byName.b.creationTimestamp, 'string');
    assert.equal(Date.parse(byName.b.creationTimestamp as string), Date.parse('2024-01-02T03:04:05Z'));
  });

  test('kinds we do not read, and our kinds in other API groups, are ignored', async () => {
    const d = dir({
      'x.yaml': `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec: {}
---
apiVersion: v1
kind: Pod
metadata: {name: cm}
spec: {}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio}
spec: {}
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TLSRoute
metadata: {name: t}
spec: {}
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: g, namespace: b}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: a}]
  to: [{group: '', kind: Service}]
`,
    });
    const { snapshot } = await loadManifestDir(d);
    assert.deepEqual(snapshot.gateways, []);
    assert.deepEqual(snapshot.referenceGrants.map((g) => g.metadata.name), ['g']);
    const total = Object.values(snapshot).reduce((n, list) => n + (list as unknown[]).length, 0);
    assert.equal(total, 1);
  });

  test('an empty directory is an empty snapshot', async () => {
    const { snapshot, files } = await loadManifestDir(dir({}));
    assert.deepEqual(files, []);
    assert.ok(Object.values(snapshot).every((list) => (list as unknown[]).length === 0));
  });
});

describe('loadManifestDir errors', () => {
  test('a YAML syntax error names the file and the line', async () => {
    const d = dir({
      'good.yaml': GATEWAY('ok'),
      'sub/bad.yaml': `${GATEWAY('first')}---
apiVersion: v1
kind: Service
metadata:
  name: svc
  labels: {a: b
spec: {}
`,
    });
    const err = await loadError(d);
    assert.equal(err.errors.length >= 1, true);
    const e = err.errors[0];
    assert.ok(e.file.endsWith(join('sub', 'bad.yaml')), e.file);
    assert.equal(typeof e.line, 'number');
    // The broken flow mapping starts on line 16 of the file; the parser may report it there or
    // where it notices the problem, but never before the document that holds it (line 13).
    assert.ok((e.line as number) >= 16 && (e.line as number) <= 17, `line ${e.line}`);
    assert.match(err.message, /bad\.yaml:\d+/);
  });

  test('invalid JSON names the file', async () => {
    const err = await loadError(dir({ 'x.json': '{"apiVersion": "v1", "kind": ' }));
    assert.ok(err.errors[0].file.endsWith('x.json'));
    assert.equal(typeof err.errors[0].line, 'number');
  });

  test('a tab-indented YAML file reports a line', async () => {
    const err = await loadError(dir({ 'x.yaml': 'apiVersion: v1\nkind: Service\nmetadata:\n\tname: a\n' }));
    assert.ok(err.errors[0].file.endsWith('x.yaml'));
    assert.equal(err.errors[0].line, 4);
  });

  test('duplicate keys in a mapping are an error', async () => {
    const err = await loadError(dir({ 'x.yaml': 'apiVersion: v1\nkind: Service\nkind: Namespace\nmetadata: {name: a}\nspec: {}\n' }));
    assert.equal(err.errors[0].line, 3);
  });

  test('the same object twice (across files) is an error naming both places', async () => {
    const err = await loadError(dir({ 'a.yaml': GATEWAY('gw', 'infra'), 'b/b.yaml': `# leading comment\n${GATEWAY('gw', 'infra')}` }));
    assert.equal(err.errors.length, 1);
    const e = err.errors[0];
    assert.ok(e.file.endsWith(join('b', 'b.yaml')), e.file);
    assert.match(e.message, /Gateway infra\/gw/);
    assert.match(e.message, /a\.yaml:1/);
  });

  test('the same name in different namespaces or kinds is not a duplicate', async () => {
    const { snapshot } = await loadManifestDir(
      dir({
        'a.yaml': `${GATEWAY('x', 'one')}---\n${GATEWAY('x', 'two')}---\napiVersion: v1\nkind: Service\nmetadata: {name: x, namespace: one}\nspec: {}\n`,
      }),
    );
    assert.equal(snapshot.gateways.length, 2);
    assert.equal(snapshot.services.length, 1);
  });

  test('an object without the default namespace collides with one naming "default"', async () => {
    const err = await loadError(dir({ 'a.yaml': `${GATEWAY('gw')}---\n${GATEWAY('gw', 'default')}` }));
    assert.match(err.errors[0].message, /Gateway default\/gw/);
  });

  const structural: { name: string; text: string; message: RegExp; line: number }[] = [
    { name: 'no kind', text: 'apiVersion: v1\nmetadata: {name: a}\n', message: /apiVersion or kind/, line: 1 },
    { name: 'no apiVersion', text: 'kind: Service\nmetadata: {name: a}\n', message: /apiVersion or kind/, line: 1 },
    { name: 'a document that is a list', text: '- a\n- b\n', message: /not a Kubernetes object/, line: 1 },
    { name: 'a document that is a scalar', text: 'hello\n', message: /not a Kubernetes object/, line: 1 },
  ];
  for (const c of structural) {
    test(`structural error: ${c.name}`, async () => {
      const err = await loadError(dir({ 'x.yaml': c.text }));
      assert.equal(err.errors.length, 1);
      assert.match(err.errors[0].message, c.message);
      assert.equal(err.errors[0].line, c.line);
      assert.ok(err.errors[0].file.endsWith('x.yaml'));
    });
  }

  // Objects of our kinds that fail their schema are rejected one by one; the rest still loads.
  const invalid: { name: string; text: string; message: RegExp; line: number }[] = [
    { name: 'no metadata.name', text: 'apiVersion: v1\nkind: Service\nmetadata: {namespace: x}\nspec: {}\n', message: /^x\/\(none\): metadata\.name: expected string, received undefined$/, line: 3 },
    { name: 'a Gateway without spec', text: 'apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: a}\n', message: /^default\/a: spec: expected object, received undefined$/, line: 1 },
    { name: 'a non-string namespace', text: 'apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: 5}\nspec: {}\n', message: /^"5"\/a: metadata\.namespace: expected string, received number$/, line: 3 },
    { name: 'the second document of a file', text: `${GATEWAY('ok')}---\napiVersion: v1\nkind: Service\nmetadata: {}\n`, message: /metadata\.name/, line: 14 },
    { name: 'a newline in a name', text: 'apiVersion: v1\nkind: Namespace\nmetadata: {name: "a\\nb"}\n', message: /^"a\\nb": metadata\.name: must be a lowercase RFC 1123 label/, line: 3 },
    { name: 'an uppercase Service name', text: 'apiVersion: v1\nkind: Service\nmetadata: {name: Web}\nspec: {}\n', message: /^default\/"Web": metadata\.name: must be a lowercase RFC 1035 label/, line: 3 },
  ];
  for (const c of invalid) {
    test(`invalid object rejected alone: ${c.name}`, async () => {
      const { snapshot } = await loadManifestDir(dir({ 'x.yaml': c.text, 'good.yaml': GATEWAY('fine') }));
      assert.ok(snapshot.gateways.some((g) => g.metadata.name === 'fine'));
      const [r, ...more] = snapshot.rejected ?? [];
      assert.deepEqual(more, []);
      assert.match(`${r.display}: ${r.message}`, c.message);
      assert.equal(r.line, c.line, formatRejected(r));
      assert.ok(r.file.endsWith('x.yaml'));
    });
  }

  test('errors of several files are all reported at once', async () => {
    const err = await loadError(dir({ 'a.yaml': 'kind: [', 'b.yaml': 'apiVersion: v1\n', 'c.yaml': GATEWAY('fine') }));
    const files = err.errors.map((e) => e.file.split(/[\\/]/).pop());
    assert.ok(files.includes('a.yaml'));
    assert.ok(files.includes('b.yaml'));
    assert.ok(!files.includes('c.yaml'));
  });

  test('a missing directory is a load error', async () => {
    const err = await loadError(join(root, 'does-not-exist'));
    assert.match(err.message, /cannot read directory/);
  });
});

describe('parseManifestText and formatManifestError', () => {
  test('each object carries the line its document starts on', () => {
    const errors: ManifestError[] = [];
    const text = `# header\n${GATEWAY('a')}---\n\n${GATEWAY('b')}`;
    const out = parseManifestText(text, 'm.yaml', errors);
    assert.deepEqual(errors, []);
    assert.deepEqual(
      out.map((o) => [(o.object.metadata as { name: string }).name, o.line]),
      [
        ['a', 2],
        ['b', 14],
      ],
    );
  });

  test('formatManifestError is file:line:column: message', () => {
    assert.equal(formatManifestError({ file: 'a.yaml', line: 3, column: 7, message: 'boom' }), 'a.yaml:3:7: boom');
    assert.equal(formatManifestError({ file: 'a.yaml', line: 3, message: 'boom' }), 'a.yaml:3: boom');
    assert.equal(formatManifestError({ file: 'a.yaml', message: 'boom' }), 'a.yaml: boom');
  });
});

describe('loader limits, symlinks and encoding', () => {
  test('a file over the size limit is refused, naming it, without being read', async () => {
    const d = dir({ 'big.yaml': `${GATEWAY('a')}# ${'x'.repeat(2000)}\n`, 'ok.yaml': GATEWAY('b') });
    await assert.rejects(new ManifestLoader({ limits: { maxFileBytes: 1000 } }).load(d), (err: unknown) => {
      assert.ok(err instanceof ManifestLoadError);
      assert.equal(err.errors.length, 1);
      assert.ok(err.errors[0].file.endsWith('big.yaml'));
      assert.match(err.errors[0].message, /larger than the limit of 1000 bytes; not read/);
      return true;
    });
  });

  test('the directory total and object count are bounded', async () => {
    const d = dir({ 'a.yaml': GATEWAY('a'), 'b.yaml': GATEWAY('b'), 'c.yaml': `${GATEWAY('c')}---\n${GATEWAY('d')}` });
    await assert.rejects(new ManifestLoader({ limits: { maxTotalBytes: 300 } }).load(d), /total more than the limit of 300 bytes/);
    await assert.rejects(new ManifestLoader({ limits: { maxObjects: 3 } }).load(d), /more than the limit of 3 objects \(reached at .*c\.yaml\)/);
    await assert.rejects(new ManifestLoader({ limits: { maxFiles: 2 } }).load(d), /3 manifest files, more than the limit of 2/);
    const { snapshot } = await new ManifestLoader({ limits: { maxObjects: 4 } }).load(d);
    assert.equal(snapshot.gateways.length, 4);
  });

  test('the default limits admit the largest benchmark: 10 000 routes in one routes.yaml', () => {
    let bytes = 0;
    for (let i = 0; i < 10_000; i++) bytes += routeManifest(i).length + '---\n'.length;
    assert.ok(bytes < MANIFEST_LIMITS.maxFileBytes, `${bytes} bytes`);
    assert.ok(10_000 < MANIFEST_LIMITS.maxObjects);
  });

  test('symlinks to regular files inside the directory are followed; others are skipped with a warning', async () => {
    const outside = dir({ 'secret.yaml': GATEWAY('outside') });
    const d = dir({ 'real/gw.txt': GATEWAY('inside'), '..data/cm.yaml': GATEWAY('configmap') });
    symlinkSync(join(d, 'real', 'gw.txt'), join(d, 'link.yaml'));
    symlinkSync('..data/cm.yaml', join(d, 'cm.yaml'));
    symlinkSync(join(outside, 'secret.yaml'), join(d, 'escape.yaml'));
    symlinkSync('/dev/null', join(d, 'device.yaml'));
    assert.equal(spawnSync('mkfifo', [join(d, 'real', 'fifo')]).status, 0);
    symlinkSync(join(d, 'real', 'fifo'), join(d, 'fifo.yaml'));
    symlinkSync(join(d, 'nowhere.yaml'), join(d, 'dangling.yaml'));
    symlinkSync(join(d, 'real'), join(d, 'dirlink'));
    const { snapshot, files, warnings } = await loadManifestDir(d);
    assert.deepEqual(snapshot.gateways.map((g) => g.metadata.name).sort(), ['configmap', 'inside']);
    assert.equal(files.filter((f) => f.endsWith('link.yaml')).length, 1);
    const said = warnings.map(formatManifestError).join('\n');
    assert.match(said, /escape\.yaml: symlink skipped: it points outside the manifest directory/);
    assert.match(said, /device\.yaml: symlink skipped: it points outside the manifest directory/);
    assert.match(said, /fifo\.yaml: symlink skipped: it does not point to a regular file/);
    assert.match(said, /dangling\.yaml: symlink skipped: it points to nothing/);
    assert.match(said, /dirlink: symlink skipped: it points to a directory/);
  });

  test('a file that is not valid UTF-8 is refused, naming it', async () => {
    const d = dir({ 'ok.yaml': GATEWAY('ok') });
    writeFileSync(join(d, 'latin1.yaml'), Buffer.from('apiVersion: v1\nkind: Namespace\nmetadata:\n  name: caf\xe9\n', 'latin1'));
    const err = await loadError(d);
    assert.equal(err.errors.length, 1);
    assert.match(formatManifestError(err.errors[0]), /latin1\.yaml: is not valid UTF-8/);
  });
});

describe('ManifestLoader with keepLastGood (vgw serve)', () => {
  const svc = (name: string) => `apiVersion: v1\nkind: Service\nmetadata: {name: ${name}}\nspec: {ports: [{port: 80}]}\n`;

  test('a file that breaks keeps its last good objects; one never good adds none; the others load', async () => {
    const d = dir({ 'a.yaml': svc('a'), 'b.yaml': svc('b') });
    const loader = new ManifestLoader({ keepLastGood: true });
    assert.deepEqual((await loader.load(d)).snapshot.services.map((s) => s.metadata.name), ['a', 'b']);
    writeFileSync(join(d, 'a.yaml'), 'kind: [unclosed\n');
    writeFileSync(join(d, 'c.yaml'), svc('c'));
    writeFileSync(join(d, 'new-broken.yaml'), 'kind: {\n');
    const loaded = await loader.load(d);
    assert.deepEqual(loaded.snapshot.services.map((s) => s.metadata.name), ['a', 'b', 'c']);
    assert.deepEqual(loaded.fileErrors.map((e) => e.file.replace(/.*\//, '')).sort(), ['a.yaml', 'new-broken.yaml']);
    // A one-shot load of the same directory fails as a whole.
    await assert.rejects(loadManifestDir(d), ManifestLoadError);
  });

  test('an object defined twice keeps its first definition and reports the second', async () => {
    const d = dir({ 'a.yaml': svc('web'), 'b.yaml': svc('web') });
    const loaded = await new ManifestLoader({ keepLastGood: true }).load(d);
    assert.equal(loaded.snapshot.services.length, 1);
    assert.match(formatManifestError(loaded.fileErrors[0]), /b\.yaml:1: Service default\/web is already defined at .*a\.yaml:1/);
  });
});

test('ConfigMaps are read with their data (CA bundles)', async () => {
  const d = mkdtempSync(join(tmpdir(), 'vgw-loader-cm-'));
  writeFileSync(join(d, 'cm.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ca, namespace: infra}\ndata: {ca.crt: "PEM"}\n');
  const { snapshot } = await loadManifestDir(d);
  assert.deepEqual(snapshot.configMaps.map((c) => [c.metadata.namespace, c.metadata.name, c.data]), [['infra', 'ca', { 'ca.crt': 'PEM' }]]);
});

test('a load told which files changed gives what a full load of the directory gives (random adds, edits, removals)', async () => {
  for (const seed of [1, 2, 3]) {
    const random = prng(seed);
    const d = dir({});
    const loader = new ManifestLoader({ keepLastGood: true });
    await loader.load(d);
    // Names that sort around each other (digits, nested folders, upper case) and a duplicate
    // object across two files now and then, so that order and first-definition-wins both count.
    const names = Array.from({ length: 40 }, (_, i) => (i % 7 === 0 ? `sub/R${i}.yaml` : `r${i % 13}${i}.yaml`));
    for (let step = 0; step < 60; step++) {
      const changed = new Set<string>();
      for (let k = 0, n = 1 + Math.floor(random() * 4); k < n; k++) {
        const name = names[Math.floor(random() * names.length)];
        const path = join(d, name);
        if (random() < 0.3) rmSync(path, { force: true });
        else {
          mkdirSync(dirname(path), { recursive: true });
          writeFileSync(path, routeManifest(Math.floor(random() * 30)).replace('/p', random() < 0.5 ? '/a' : '/b'));
        }
        changed.add(path);
      }
      const incremental = await loader.load(d, changed);
      const full = await new ManifestLoader({ keepLastGood: true }).load(d);
      assert.deepEqual(incremental.files, full.files, `seed ${seed} step ${step}: listing`);
      assert.deepEqual(incremental.snapshot, full.snapshot, `seed ${seed} step ${step}: snapshot`);
      assert.deepEqual(incremental.fileErrors, full.fileErrors, `seed ${seed} step ${step}: duplicates and errors`);
    }
  }
});
