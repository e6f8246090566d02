// Records the generated VCL writes to the Varnish shared-memory log (std.log, VSL tag VCL_Log)
// for the control plane to read: mirrored requests and per-route filter outcomes. Stock Varnish
// has no other channel from VCL to the outside, so this is the one contract between the VCL
// compiler (writer) and the log readers in src/mirror and src/metrics. Fields are separated by
// one space; route ids ("namespace/name/rule/match") and service keys ("namespace/name:port")
// never contain spaces.

/** Client transaction, once per selected mirror, after the rule's request filters ran:
 *  `vgw-mirror <serviceKey>`. The request to replay is the request as it stands at this record. */
export const LOG_MIRROR = 'vgw-mirror';

/** Client transaction, once per request whose rule applies filters:
 *  `vgw-filters <routeId> <FilterType>[,<FilterType>...]`. */
export const LOG_FILTERS = 'vgw-filters';

/** Client or backend transaction, when a filter could not do its job:
 *  `vgw-filter-failure <routeId> <FilterType> <reason>`. */
export const LOG_FILTER_FAILURE = 'vgw-filter-failure';

/** Backend transaction, when a route's timeout ended a backend request: `vgw-timeout <routeId>`. */
export const LOG_TIMEOUT = 'vgw-timeout';

/** Backend transaction, when a route's retry policy retries: `vgw-retry <routeId> <status>`. */
export const LOG_RETRY = 'vgw-retry';

export type LogRecord =
  | { kind: 'mirror'; service: string }
  | { kind: 'filters'; route: string; filters: string[] }
  | { kind: 'filter-failure'; route: string; filter: string; reason: string }
  | { kind: 'timeout'; route: string }
  | { kind: 'retry'; route: string; status: number };

/** Parses the payload of one VCL_Log record; null for records that are not ours. */
export function parseLogRecord(payload: string): LogRecord | null {
  const parts = payload.trim().split(' ');
  switch (parts[0]) {
    case LOG_MIRROR:
      return parts.length === 2 ? { kind: 'mirror', service: parts[1] } : null;
    case LOG_FILTERS:
      return parts.length === 3 ? { kind: 'filters', route: parts[1], filters: parts[2].split(',') } : null;
    case LOG_FILTER_FAILURE:
      return parts.length === 4 ? { kind: 'filter-failure', route: parts[1], filter: parts[2], reason: parts[3] } : null;
    case LOG_TIMEOUT:
      return parts.length === 2 ? { kind: 'timeout', route: parts[1] } : null;
    case LOG_RETRY:
      return parts.length === 3 && /^\d{3}$/.test(parts[2]) ? { kind: 'retry', route: parts[1], status: Number(parts[2]) } : null;
    default:
      return null;
  }
}

/** Metric labels of a route id "namespace/name/rule/match": route "namespace/name", rule "rule". */
export function splitRouteId(routeId: string): { route: string; rule: string } | null {
  const parts = routeId.split('/');
  if (parts.length !== 4 || parts.some((p) => p === '')) return null;
  return { route: `${parts[0]}/${parts[1]}`, rule: parts[2] };
}
