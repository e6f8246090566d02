// Reads a directory of Kubernetes manifests into a ResourceSnapshot. Any file that cannot be
// read or parsed makes the whole load fail: applying half a directory could silently drop
// routes, so callers keep the previous snapshot instead.
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { LineCounter, parseAllDocuments } from 'yaml';
import { emptySnapshot, type ResourceSnapshot } from '../../gatewayapi/types.ts';

export const MANIFEST_EXTENSIONS = ['.yaml', '.yml', '.json'];

export interface ManifestError {
  file: string;
  line?: number;
  column?: number;
  message: string;
}

export class ManifestLoadError extends Error {
  readonly errors: ManifestError[];
  constructor(errors: ManifestError[]) {
    super(errors.map(formatManifestError).join('\n'));
    this.name = 'ManifestLoadError';
    this.errors = errors;
  }
}

export function formatManifestError(e: ManifestError): string {
  const at = e.line === undefined ? e.file : `${e.file}:${e.line}${e.column ? `:${e.column}` : ''}`;
  return `${at}: ${e.message}`;
}

// kind -> [snapshot field, namespaced, accepted apiVersion groups]
const KINDS: Record<string, { field: keyof ResourceSnapshot; namespaced: boolean; groups: string[] }> = {
  GatewayClass: { field: 'gatewayClasses', namespaced: false, groups: ['gateway.networking.k8s.io'] },
  Gateway: { field: 'gateways', namespaced: true, groups: ['gateway.networking.k8s.io'] },
  HTTPRoute: { field: 'httpRoutes', namespaced: true, groups: ['gateway.networking.k8s.io'] },
  ReferenceGrant: { field: 'referenceGrants', namespaced: true, groups: ['gateway.networking.k8s.io'] },
  Service: { field: 'services', namespaced: true, groups: [''] },
  EndpointSlice: { field: 'endpointSlices', namespaced: true, groups: ['discovery.k8s.io'] },
  Namespace: { field: 'namespaces', namespaced: false, groups: [''] },
  Secret: { field: 'secrets', namespaced: true, groups: [''] },
};

export async function listManifestFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && MANIFEST_EXTENSIONS.some((ext) => e.name.endsWith(ext)))
    .filter((e) => !e.name.startsWith('.'))
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

export interface LoadedManifests {
  snapshot: ResourceSnapshot;
  files: string[];
}

/** One-shot load, for commands that read the directory once. */
export function loadManifestDir(dir: string): Promise<LoadedManifests> {
  return new ManifestLoader().load(dir);
}

interface CachedFile {
  /** mtime, ctime, size and inode: a rewrite or an atomic rename changes at least one. */
  version: string;
  objects: ParsedObject[];
  errors: ManifestError[];
}

/**
 * Loads a directory repeatedly, re-parsing only files whose size or mtime changed: with
 * thousands of routes, YAML parsing, not routing, would otherwise dominate each reload.
 */
export class ManifestLoader {
  private cache = new Map<string, CachedFile>();

  async load(dir: string): Promise<LoadedManifests> {
    let files: string[];
    try {
      files = await listManifestFiles(dir);
    } catch (err) {
      throw new ManifestLoadError([{ file: dir, message: `cannot read directory: ${(err as Error).message}` }]);
    }
    const snapshot = emptySnapshot();
    const errors: ManifestError[] = [];
    const seen = new Map<string, string>();
    const next = new Map<string, CachedFile>();
    for (const path of files) {
      const file = relative(process.cwd(), path) || path;
      let parsed: CachedFile | undefined;
      try {
        parsed = await this.parseFile(path, file);
      } catch (err) {
        errors.push({ file, message: (err as Error).message });
        continue;
      }
      if (!parsed) continue;
      next.set(path, parsed);
      errors.push(...parsed.errors);
      // Unchanged files hand out the same objects as last time: snapshots are read-only
      // (the translator never mutates its input), and copying thousands of objects per
      // reload would cost more than the routing work itself.
      for (const { object, line } of parsed.objects) addObject(snapshot, object, file, line, errors, seen);
    }
    this.cache = next;
    if (errors.length) throw new ManifestLoadError(errors);
    return { snapshot, files };
  }

  private async parseFile(path: string, file: string): Promise<CachedFile | undefined> {
    let info;
    try {
      info = await stat(path);
    } catch (err) {
      // A file removed between listing and reading is simply gone.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    const cached = this.cache.get(path);
    const version = `${info.mtimeMs}/${info.ctimeMs}/${info.size}/${info.ino}`;
    if (cached && cached.version === version) return cached;
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    const errors: ManifestError[] = [];
    const objects = parseManifestText(text, file, errors);
    return { version, objects, errors };
  }
}

interface ParsedObject {
  object: Record<string, unknown>;
  line: number;
}

export function parseManifestText(text: string, file: string, errors: ManifestError[]): ParsedObject[] {
  const out: ParsedObject[] = [];
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const docList = Array.isArray(docs) ? docs : [docs];
  for (const doc of docList) {
    if (doc.errors.length) {
      for (const e of doc.errors) {
        const pos = lineCounter.linePos(e.pos[0]);
        errors.push({ file, line: pos.line, column: pos.col, message: e.message.split('\n')[0] });
      }
      continue;
    }
    const value: unknown = doc.toJS();
    const line = doc.contents ? lineCounter.linePos(doc.contents.range[0]).line : 1;
    if (value === null || value === undefined) continue;
    // A `kind: List` (kubectl's output format) holds objects in items.
    const items = isRecord(value) && value.kind === 'List' && Array.isArray(value.items) ? value.items : [value];
    for (const item of items) {
      if (!isRecord(item)) {
        errors.push({ file, line, message: 'document is not a Kubernetes object (expected a mapping)' });
        continue;
      }
      out.push({ object: item, line });
    }
  }
  return out;
}

function addObject(
  snapshot: ResourceSnapshot,
  obj: Record<string, unknown>,
  file: string,
  line: number,
  errors: ManifestError[],
  seen: Map<string, string>,
): void {
  const kind = obj.kind;
  const apiVersion = obj.apiVersion;
  if (typeof kind !== 'string' || typeof apiVersion !== 'string') {
    errors.push({ file, line, message: 'object has no apiVersion or kind' });
    return;
  }
  const spec = KINDS[kind];
  if (!spec) return; // Deployments and the like: not ours to read.
  const group = apiVersion.includes('/') ? apiVersion.slice(0, apiVersion.lastIndexOf('/')) : '';
  if (!spec.groups.includes(group)) return;
  const meta = obj.metadata;
  if (!isRecord(meta) || typeof meta.name !== 'string' || meta.name === '') {
    errors.push({ file, line, message: `${kind} has no metadata.name` });
    return;
  }
  if (spec.namespaced) {
    if (meta.namespace === undefined) meta.namespace = 'default';
    if (typeof meta.namespace !== 'string') {
      errors.push({ file, line, message: `${kind} ${meta.name}: metadata.namespace must be a string` });
      return;
    }
  } else {
    delete meta.namespace;
  }
  if (meta.generation === undefined) meta.generation = 1;
  if (meta.creationTimestamp instanceof Date) meta.creationTimestamp = meta.creationTimestamp.toISOString();
  const id = `${kind} ${spec.namespaced ? `${meta.namespace}/` : ''}${meta.name}`;
  const previous = seen.get(id);
  if (previous) {
    errors.push({ file, line, message: `${id} is already defined at ${previous}` });
    return;
  }
  seen.set(id, `${file}:${line}`);
  if (!isRecord(obj.spec) && kind !== 'EndpointSlice' && kind !== 'Namespace' && kind !== 'Secret') {
    errors.push({ file, line, message: `${id} has no spec` });
    return;
  }
  (snapshot[spec.field] as unknown[]).push(obj);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
