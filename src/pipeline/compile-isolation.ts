// Last line of defence for "one bad object never stops the gateway": when a generated VCL does
// not compile although every value passed validation, find the HTTPRoute(s) responsible by
// compiling the config with subsets of its routes (`varnishd -C`), so that they alone can be
// rejected and everything else applied. Routes are tried in IR order; for each culprit a binary
// search finds the shortest failing prefix (its last route is the culprit), which costs about
// log2(routes) + 1 VCC runs per culprit. VCC without the C compiler takes well under a second
// even for thousands of routes.
import type { HTTPRoute } from '../gatewayapi/types.ts';
import type { RoutingIR } from '../ir/types.ts';
import type { VccResult } from '../varnish/vcc-check.ts';

/** Culprits looked for in one isolation; a config with more is isolated again on the next apply. */
export const MAX_CULPRITS = 16;

export interface Culprit {
  /** "namespace/name" of the HTTPRoute. */
  route: string;
  /** Condition message: the VCC error and the VCL line it names. */
  message: string;
}

export interface IsolationOptions {
  /** The VCL of a routing IR, unsharded, as the data plane would compile it. */
  compile: (ir: RoutingIR) => string;
  /** `varnishd -C` (vccCheck). */
  check: (vcl: string) => Promise<VccResult>;
  maxCulprits?: number;
}

export interface IsolationResult {
  culprits: Culprit[];
  /** VCC runs spent. */
  checks: number;
  /** Why no culprit could be named although the whole config fails (it fails without any route). */
  unattributed?: string;
}

/** The route key of an IR route id "namespace/name/rule/match". */
export function routeKeyOfId(id: string): string {
  return id.split('/').slice(0, 2).join('/');
}

/** Null when the whole IR compiles (the failure was not in the VCL: a port, the C compiler...). */
export async function isolateCompileFailure(ir: RoutingIR, opts: IsolationOptions): Promise<IsolationResult | null> {
  let checks = 0;
  const attempt = async (keep: Set<string> | null): Promise<VccResult> => {
    checks++;
    const vcl = opts.compile(keep ? withRoutes(ir, keep) : ir);
    const result = await opts.check(vcl);
    if (result.ok) return result;
    return { ...result, message: describeFailure(result, vcl) };
  };
  if ((await attempt(null)).ok) return null;
  const empty = await attempt(new Set());
  if (!empty.ok) return { culprits: [], checks, unattributed: empty.message };

  const keys = routeKeys(ir);
  const culprits: Culprit[] = [];
  const max = opts.maxCulprits ?? MAX_CULPRITS;
  while (culprits.length < max) {
    const remaining = keys.filter((k) => !culprits.some((c) => c.route === k));
    const whole = await attempt(new Set(remaining));
    if (whole.ok) break;
    // Smallest n such that the first n routes fail; the empty prefix is known to compile.
    let lo = 1;
    let hi = remaining.length;
    let failure = whole;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const r = await attempt(new Set(remaining.slice(0, mid)));
      if (r.ok) lo = mid + 1;
      else {
        hi = mid;
        failure = r;
      }
    }
    culprits.push({ route: remaining[hi - 1], message: (failure as VccResult & { ok: false }).message });
  }
  return { culprits, checks };
}

function routeKeys(ir: RoutingIR): string[] {
  const seen = new Set<string>();
  for (const s of ir.sockets) for (const v of s.vhosts) for (const r of v.routes) seen.add(routeKeyOfId(r.id));
  return [...seen];
}

function withRoutes(ir: RoutingIR, keep: Set<string>): RoutingIR {
  return {
    ...ir,
    sockets: ir.sockets.map((s) => ({ ...s, vhosts: s.vhosts.map((v) => ({ ...v, routes: v.routes.filter((r) => keep.has(routeKeyOfId(r.id))) })) })),
  };
}

function describeFailure(result: VccResult & { ok: false }, vcl: string): string {
  const line = result.line === undefined ? undefined : vcl.split('\n')[result.line - 1]?.trim();
  const where = line === undefined ? '' : ` (VCL line ${result.line}: ${line.length > 200 ? `${line.slice(0, 200)}...` : line})`;
  return `${result.message}${where}`;
}

/**
 * Routes found to break the VCL compile, remembered per route version, so the next apply
 * rejects them without isolating again until the route changes (new generation or new spec;
 * files in standalone mode keep generation 1 when edited, hence the spec).
 */
export class CompileCulprits {
  private readonly byRoute = new Map<string, { version: string; message: string }>();

  add(route: HTTPRoute, message: string): void {
    this.byRoute.set(keyOf(route), { version: versionOf(route), message });
  }

  get size(): number {
    return this.byRoute.size;
  }

  /** Forgets routes that are gone or changed; the list is bounded by the routes that exist. */
  prune(routes: HTTPRoute[]): void {
    // Nearly always empty: then there is nothing to look up, and no route needs serialising.
    if (this.byRoute.size === 0) return;
    const current = new Map(routes.map((r) => [keyOf(r), r]));
    for (const [k, e] of this.byRoute) {
      const r = current.get(k);
      if (!r || versionOf(r) !== e.version) this.byRoute.delete(k);
    }
  }

  /** For TranslateOptions.rejectedRoutes. */
  readonly rejected = (route: HTTPRoute): string | null => {
    const e = this.byRoute.get(keyOf(route));
    if (!e || e.version !== versionOf(route)) return null;
    return `the generated configuration did not compile: ${e.message}`;
  };
}

function keyOf(route: HTTPRoute): string {
  return `${route.metadata.namespace ?? ''}/${route.metadata.name}`;
}

function versionOf(route: HTTPRoute): string {
  return `${route.metadata.generation ?? 1}:${JSON.stringify(route.spec)}`;
}
