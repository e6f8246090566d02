// From a logged client transaction to the requests to mirror: one per `vgw-mirror` record,
// each the request as VCL had left it at that record (see src/vcl/log-records.ts).
import { RequestState, type LoggedRequest, type VslTransaction } from '../varnish/vsl.ts';
import { LOG_FILTERS, LOG_MIRROR, parseLogRecord } from '../vcl/log-records.ts';

export interface MirrorRequest extends LoggedRequest {
  /** Service key "namespace/name:port" of the mirror target. */
  service: string;
  /** Route id of the rule that mirrored, from the transaction's `vgw-filters` record. */
  route?: string;
}

/** `recLen` is varnishd's vsl_reclen, to recognise records that may have been cut. */
export function mirrorRequests(tx: VslTransaction, recLen: number): MirrorRequest[] {
  const state = new RequestState(recLen);
  const out: MirrorRequest[] = [];
  let route: string | undefined;
  let mirrorRoute: string | undefined;
  for (const { tag, payload } of tx.records) {
    if (state.apply(tag, payload) || tag !== 'VCL_Log') continue;
    if (!payload.startsWith(LOG_MIRROR) && !payload.startsWith(LOG_FILTERS)) continue;
    const rec = parseLogRecord(payload);
    if (rec?.kind === 'mirror') {
      out.push({ ...state.snapshot(), service: rec.service });
    } else if (rec?.kind === 'filters') {
      // The rule that mirrors lists RequestMirror; the record may come before or after.
      route ??= rec.route;
      if (!mirrorRoute && rec.filters.includes('RequestMirror')) mirrorRoute = rec.route;
    }
  }
  const owner = mirrorRoute ?? route;
  if (owner) for (const r of out) r.route = owner;
  return out;
}
