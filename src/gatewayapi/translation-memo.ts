// Incremental translation: what one translate() call can take over from the previous one.
//
// The caller owns the memo and passes it in TranslateOptions.memo; translate() stays a pure
// function of (snapshot, options) in its result, with or without it (test/unit/
// translation-memo.test.ts checks this on random change sequences). Reuse is keyed on object
// identity: the manifest loader and the cluster cache hand out the same object for an object
// that did not change, and a new one for one that did, so an object seen before is an object
// whose translation is known. Inputs are never mutated by the translator, and nothing it caches
// is handed out where a caller may mutate it (statuses are always built afresh).
//
// Two levels:
//   - per HTTPRoute object alone: validateRoute's verdict and the route's regexes and sort key.
//     They depend on nothing else, so they survive every other change.
//   - per environment: everything else the translator reads (Gateways and classes, Services,
//     ReferenceGrants, Namespaces, Secrets, ConfigMaps, BackendTLSPolicies, rejected objects, and
//     the options but `now`, `previous`, `regexVerdicts` and `rejectedRoutes`). While it is the
//     same, the Gateway evaluation, each route's evaluation (resolved backends, parent
//     conditions, attachments), its vhost contributions, the sorted vhost tables and their
//     service renumbering are reused. Any change to it drops them: a full translation.
//
// Bound: every cache keyed by routes, attachments or vhosts keeps only the entries the last
// translation used (LastUse), so nothing grows over changes; the service numbering of an
// environment holds at most one entry per Service port and client certificate of it.
import { mapServices, serviceNumbering } from '../ir/merge.ts';
import type { IRRoute, IRService, IRSocket, IRVirtualHost } from '../ir/types.ts';
import type { RankedMatch } from './precedence.ts';
import { routeRegexes, type RouteRegex } from './regex.ts';
import { RouteValueError, type ValidRule } from './rules.ts';
import type { ResourceSnapshot, HTTPRoute } from './types.ts';

/**
 * A map that keeps, across translations, only the entries read or written by the last one:
 * `endUse()` drops everything the translation that just ended did not touch. Entries are
 * stamped with the translation that last used them rather than copied into a new map, so a
 * translation that reuses everything allocates nothing here.
 */
export class LastUse<K, V> {
  private readonly entries = new Map<K, { value: V; used: number }>();
  private use = 0;
  private touched = 0;

  get(key: K): V | undefined {
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    if (e.used !== this.use) {
      e.used = this.use;
      this.touched++;
    }
    return e.value;
  }

  set(key: K, value: V): void {
    const e = this.entries.get(key);
    if (e === undefined) {
      this.entries.set(key, { value, used: this.use });
      this.touched++;
      return;
    }
    e.value = value;
    if (e.used !== this.use) {
      e.used = this.use;
      this.touched++;
    }
  }

  endUse(): void {
    if (this.touched < this.entries.size) for (const [k, e] of this.entries) if (e.used !== this.use) this.entries.delete(k);
    this.use++;
    this.touched = 0;
  }

  get size(): number {
    return this.entries.size;
  }
}

/** validateRoute's verdict on one route object: its rules, or the RouteValueError message. */
export type RouteValidation = { rules: ValidRule[]; error?: undefined } | { rules: null; error: string };

interface RouteFacts {
  validation?: RouteValidation;
  regexes?: RouteRegex[];
  sortKey?: { created: string; key: string };
}

/** One vhost contribution of an attachment on one socket: the hostname and its ranked matches. */
export interface Contribution<R extends RankedMatch & { route: IRRoute }> {
  hostname: string;
  ranked: R[];
}

/** A vhost as sorted last time, and the unsorted contributions it was sorted from. */
interface VhostEntry<R> {
  listener: string;
  unsorted: readonly R[];
  vhost: IRVirtualHost;
}

/** One socket of one routing table (the combined one or a Gateway's). */
export class SocketMemo<A extends object, R extends RankedMatch & { route: IRRoute }> {
  readonly contributions = new LastUse<A, Contribution<R>[]>();
  private readonly vhosts = new LastUse<string, VhostEntry<R>>();
  private order: string[] = [];

  /**
   * The vhost for `hostname`: the one built last time when the same listener owns it and the
   * same ranked entries (same objects, same order) reach it, else a new one sorted by `sort`.
   */
  vhost(hostname: string, listener: string, unsorted: readonly R[], sort: (ranked: readonly R[]) => IRRoute[]): IRVirtualHost {
    const before = this.vhosts.get(hostname);
    if (before && before.listener === listener && (before.unsorted === unsorted || sameElements(before.unsorted, unsorted))) return before.vhost;
    // `sort` leaves `unsorted` as it is (it is kept for the next comparison).
    const vhost: IRVirtualHost = { hostname, listener, routes: sort(unsorted) };
    this.vhosts.set(hostname, { listener, unsorted, vhost });
    return vhost;
  }

  /** Hostnames in string order: last time's order when the set of hostnames is the same. */
  sortedHostnames(hostnames: ReadonlyMap<string, unknown>): string[] {
    if (this.order.length === hostnames.size && this.order.every((h) => hostnames.has(h))) return this.order;
    this.order = [...hostnames.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return this.order;
  }

  endUse(): void {
    this.contributions.endUse();
    this.vhosts.endUse();
  }
}

/** A routing table's sockets by address|port, and its service renumbering (reindexServices). */
export class TableMemo<A extends object, R extends RankedMatch & { route: IRRoute }> {
  private readonly sockets = new Map<string, SocketMemo<A, R>>();
  private readonly reindexed = new LastUse<IRVirtualHost, { before: number[]; after: number[]; vhost: IRVirtualHost }>();

  socket(key: string): SocketMemo<A, R> {
    let s = this.sockets.get(key);
    if (!s) {
      s = new SocketMemo();
      this.sockets.set(key, s);
    }
    return s;
  }

  /**
   * reindexServices with the vhosts of last time reused: a vhost is reused when every service
   * index it uses maps as it did then. The indexes are assigned in the same walk order as
   * reindexServices, so the numbering, and the result, are the same as its.
   */
  reindexServices(sockets: IRSocket[], services: readonly IRService[]): { sockets: IRSocket[]; services: IRService[] } {
    const { id, next } = serviceNumbering(services);
    const out = sockets.map((s) => ({
      ...s,
      vhosts: s.vhosts.map((v) => {
        const known = this.reindexed.get(v);
        if (known && known.before.every((old, i) => id(old) === known.after[i])) return known.vhost;
        const before: number[] = [];
        const after: number[] = [];
        const recording = (old: number) => {
          const n = id(old);
          before.push(old);
          after.push(n);
          return n;
        };
        const vhost = { ...v, routes: v.routes.map((r) => mapServices(r, recording)) };
        this.reindexed.set(v, { before, after, vhost });
        return vhost;
      }),
    }));
    return { sockets: out, services: next };
  }

  endUse(): void {
    for (const s of this.sockets.values()) s.endUse();
    this.reindexed.endUse();
  }
}

/**
 * What an environment caches besides the translator's own evaluation of it (`value`): route
 * evaluations keyed by route object (valid for the route's invalid message, which depends on
 * options read each time), the service numbering, and the routing tables.
 */
export class EnvironmentMemo<V, E> {
  readonly value: V;
  readonly evaluations = new LastUse<HTTPRoute, { invalidMessage: string | undefined; evaluation: E | null }>();
  /** Service numbering before reindexServices; stable while the environment is the same. */
  readonly services: IRService[] = [];
  readonly serviceIds = new Map<string, number>();
  private readonly tables = new Map<string, TableMemo<object, RankedMatch & { route: IRRoute }>>();

  constructor(value: V) {
    this.value = value;
  }

  /** The memo of one routing table ("" for the combined one, the Gateway's key for its own). */
  table<A extends object, R extends RankedMatch & { route: IRRoute }>(key: string): TableMemo<A, R> {
    let t = this.tables.get(key);
    if (!t) {
      t = new TableMemo();
      this.tables.set(key, t);
    }
    return t as unknown as TableMemo<A, R>;
  }

  endUse(): void {
    this.evaluations.endUse();
    for (const t of this.tables.values()) t.endUse();
  }
}

/** The inputs of an environment, compared to decide whether it is the same as last time. */
interface EnvironmentKey {
  objects: (readonly unknown[])[];
  content: string;
}

/** Options that are not part of the environment: read afresh by every translation. */
const PER_CALL_OPTIONS = new Set(['now', 'previous', 'regexVerdicts', 'rejectedRoutes', 'memo']);

export class TranslationMemo {
  private readonly facts = new LastUse<HTTPRoute, RouteFacts>();
  private env: { key: EnvironmentKey; memo: EnvironmentMemo<unknown, unknown> } | undefined;
  /** Translations that reused the environment / rebuilt it; for tests and metrics. */
  readonly stats = { reused: 0, rebuilt: 0 };

  /**
   * The environment memo for this snapshot and options: last translation's when nothing but the
   * HTTPRoutes (and the per-call options) changed, else a new one around `build()`.
   */
  environment<V, E>(snapshot: ResourceSnapshot, options: object, build: () => V): { memo: EnvironmentMemo<V, E>; reused: boolean } {
    const key = environmentKey(snapshot, options);
    if (this.env && sameKey(this.env.key, key)) {
      this.stats.reused++;
      return { memo: this.env.memo as EnvironmentMemo<V, E>, reused: true };
    }
    this.stats.rebuilt++;
    const memo = new EnvironmentMemo<V, E>(build());
    this.env = { key, memo: memo as EnvironmentMemo<unknown, unknown> };
    return { memo, reused: false };
  }

  /** validateRoute(route), remembered per route object (its RouteValueError as a message). */
  validation(route: HTTPRoute, validate: (route: HTTPRoute) => ValidRule[]): RouteValidation {
    const facts = this.factsOf(route);
    if (!facts.validation) {
      try {
        facts.validation = { rules: validate(route) };
      } catch (err) {
        if (!(err instanceof RouteValueError)) throw err;
        facts.validation = { rules: null, error: err.message };
      }
    }
    return facts.validation;
  }

  /** routeRegexes(route), remembered per route object. */
  regexes(route: HTTPRoute): RouteRegex[] {
    const facts = this.factsOf(route);
    facts.regexes ??= routeRegexes(route);
    return facts.regexes;
  }

  /**
   * The routes in translation order (creationTimestamp, then namespace/name), as the
   * translator's sortObjects orders them, with each route's sort key computed once.
   */
  sortRoutes(routes: readonly HTTPRoute[]): HTTPRoute[] {
    const keyed = routes.map((route) => {
      const facts = this.factsOf(route);
      facts.sortKey ??= {
        created: route.metadata.creationTimestamp ?? '',
        key: route.metadata.namespace ? `${route.metadata.namespace}/${route.metadata.name}` : route.metadata.name,
      };
      return { route, k: facts.sortKey };
    });
    keyed.sort((a, b) => {
      if (a.k.created !== b.k.created) return a.k.created < b.k.created ? -1 : 1;
      return a.k.key < b.k.key ? -1 : a.k.key > b.k.key ? 1 : 0;
    });
    return keyed.map((e) => e.route);
  }

  /** Route entries held (route facts and route evaluations): at most twice the routes. */
  get entries(): number {
    return this.facts.size + (this.env?.memo.evaluations.size ?? 0);
  }

  /** Ends a translation: drops every entry it did not use. */
  endUse(): void {
    this.facts.endUse();
    this.env?.memo.endUse();
  }

  private factsOf(route: HTTPRoute): RouteFacts {
    let facts = this.facts.get(route);
    if (!facts) {
      facts = {};
      this.facts.set(route, facts);
    }
    return facts;
  }
}

function environmentKey(snapshot: ResourceSnapshot, options: object): EnvironmentKey {
  const opts: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(options)) {
    if (PER_CALL_OPTIONS.has(k) || v === undefined) continue;
    // unavailableSockets may be a Map its owner updates in place: compared by content.
    opts[k] = v instanceof Map ? [...v.entries()] : v;
  }
  return {
    // Compared by identity: an unchanged object is the same object (see above).
    objects: [
      snapshot.gateways,
      snapshot.referenceGrants,
      snapshot.services,
      snapshot.namespaces,
      snapshot.secrets,
      snapshot.configMaps,
      snapshot.backendTLSPolicies ?? [],
    ],
    // Few and small, and rebuilt by some callers on every run (the operator resolves class
    // parameters into a copy): compared by content.
    content: JSON.stringify([snapshot.gatewayClasses, snapshot.rejected ?? [], opts]),
  };
}

function sameKey(a: EnvironmentKey, b: EnvironmentKey): boolean {
  return a.content === b.content && a.objects.length === b.objects.length && a.objects.every((list, i) => sameElements(list, b.objects[i]));
}

function sameElements(a: readonly unknown[], b: readonly unknown[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
