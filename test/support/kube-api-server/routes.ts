// URL paths to what they address, as the apiserver lays them out, and the discovery documents
// (`/api`, `/apis`, `/apis/{group}/{version}`) that generic clients such as KubernetesObjectApi read
// before their first request.
import type { Resource, ResourceTable } from './resources.ts';

export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete' | 'deletecollection' | 'discovery';

export type Route =
  | { type: 'discovery'; body: () => unknown }
  | { type: 'resource'; resource: Resource; namespace?: string; name?: string; subresource?: string }
  | { type: 'none' };

export function resolve(table: ResourceTable, path: string, url: string): Route {
  const segs = path.split('/').filter(Boolean);
  let group: string;
  let version: string;
  let rest: string[];
  if (segs[0] === 'api') {
    if (segs.length === 1) {
      return { type: 'discovery', body: () => ({ kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: new URL(url).host }] }) };
    }
    [group, version, rest] = ['', segs[1], segs.slice(2)];
  } else if (segs[0] === 'apis') {
    if (segs.length === 1) return { type: 'discovery', body: () => ({ kind: 'APIGroupList', apiVersion: 'v1', groups: table.groups().map((g) => apiGroup(table, g)) }) };
    if (segs.length === 2) {
      if (!table.groups().includes(segs[1])) return { type: 'none' };
      return { type: 'discovery', body: () => ({ kind: 'APIGroup', apiVersion: 'v1', ...apiGroup(table, segs[1]) }) };
    }
    [group, version, rest] = [segs[1], segs[2], segs.slice(3)];
  } else if (segs.length === 1 && segs[0] === 'version') {
    return { type: 'discovery', body: () => ({ major: '1', minor: '33', gitVersion: 'v1.33.0+vgw-test', platform: 'linux/amd64' }) };
  } else {
    return { type: 'none' };
  }
  if (!table.groupVersions(group).includes(version)) return { type: 'none' };
  if (rest.length === 0) return { type: 'discovery', body: () => resourceList(table, group, version) };
  const find = (plural: string) => table.byPlural(group, version, plural);
  // `namespaces/{ns}/{plural}...` addresses a namespaced kind; otherwise `namespaces/{name}[/status]`
  // is the Namespace object itself.
  if (rest[0] === 'namespaces' && rest.length >= 3 && find(rest[2])?.namespaced) {
    if (rest.length > 5) return { type: 'none' };
    return { type: 'resource', resource: find(rest[2])!, namespace: rest[1], name: rest[3], subresource: rest[4] };
  }
  const r = find(rest[0]);
  if (!r || rest.length > 3 || (r.namespaced && rest.length > 1)) return { type: 'none' };
  return { type: 'resource', resource: r, name: rest[1], subresource: rest[2] };
}

function apiGroup(table: ResourceTable, g: string) {
  const versions = table.groupVersions(g).map((v) => ({ groupVersion: `${g}/${v}`, version: v }));
  return { name: g, versions, preferredVersion: versions[0] };
}

function resourceList(table: ResourceTable, group: string, version: string) {
  const resources = [];
  for (const r of table.all.filter((x) => x.group === group && x.version === version)) {
    const entry: Record<string, unknown> = {
      name: r.plural,
      singularName: r.singular,
      namespaced: r.namespaced,
      kind: r.kind,
      verbs: ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'],
    };
    if (r.shortNames) entry.shortNames = r.shortNames;
    resources.push(entry);
    if (r.status) resources.push({ name: `${r.plural}/status`, singularName: '', namespaced: r.namespaced, kind: r.kind, verbs: ['get', 'patch', 'update'] });
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group ? `${group}/${version}` : version, resources };
}

export function verbOf(method: string, route: Route, watch: boolean): Verb {
  if (route.type !== 'resource') return 'discovery';
  const named = route.name !== undefined;
  switch (method) {
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return named ? 'delete' : 'deletecollection';
    default:
      return named ? 'get' : watch ? 'watch' : 'list';
  }
}
