// The answer `vgw explain` prints: the prediction step by step, what varnishd did, and every
// point where the two disagree. Pure.
import type { Observation } from './replay.ts';
import type { Prediction } from './predict.ts';

/** Where what varnishd did differs from what the IR says; empty when they agree. */
export function disagreements(p: Prediction, o: Observation): string[] {
  const out: string[] = [];
  const reached = o.backend ? `reached ${o.backend.service}` : 'reached no backend';
  const o2 = p.outcome;
  switch (o2.kind) {
    case 'refused':
    case 'not-found':
    case 'preflight':
    case 'error':
    case 'redirect':
      if (o.status !== o2.status) out.push(`expected status ${o2.status} (${o2.kind}), varnishd answered ${o.status}`);
      if (o.backend) out.push(`expected no backend, but the request ${reached}`);
      if (o2.kind === 'redirect' && !o.headers.some(([n]) => n.toLowerCase() === 'location')) out.push('expected a Location header on the redirect');
      break;
    case 'backend': {
      const usable = o2.choices.filter((c) => c.service !== null && c.endpoints > 0).map((c) => c.service as string);
      const unusable = o2.choices.some((c) => c.service === null || c.endpoints === 0);
      if (o.backend) {
        if (!usable.includes(o.backend.service)) out.push(`the request ${reached}, which is not among the route's usable backends (${usable.join(', ') || 'none'})`);
        if (o.status !== 200) out.push(`the backend answered 200 but the client got ${o.status}`);
      } else if (!(unusable && o.status === 500)) {
        out.push(`expected one of the backends ${usable.join(', ')}${unusable ? ' or 500' : ''}, varnishd answered ${o.status} and ${reached}`);
      }
      break;
    }
  }
  return out;
}

const pct = (share: number) => `${(share * 100).toFixed(share * 100 % 1 === 0 ? 0 : 1)} %`;

export function formatExplanation(p: Prediction, o: Observation | undefined, problems: string[]): string {
  const lines: string[] = [];
  const step = (title: string, ...body: string[]) => lines.push(title, ...body.map((b) => `    ${b}`));
  step(`listener:  ${p.socket ? `${p.socket.name} (port ${p.socket.port})` : '(none)'}`);
  // The replay sends the request to varnishd in clear text: what TLS decides before routing
  // is not part of it, and saying so keeps the answer from claiming more than it checked.
  if (p.socket?.tls) {
    lines.push(
      '    HTTPS listener: replayed in clear text, without TLS. Certificate choice by SNI, client',
      '    certificate validation and tls.options are not exercised; routing and filters are.',
    );
  }
  step(`host:      ${p.host}${p.vhost ? `  -> ${p.vhost.listener}, hostname ${p.vhost.hostname} (${p.vhost.how})` : ''}`);
  step(`path:      ${p.path}${p.query ? `  query ${p.query}` : ''}`);
  if (p.candidates.length) {
    lines.push('routes of this host, in precedence order:');
    const winner = p.winner?.id;
    for (const c of p.candidates) {
      const mark = c.id === winner ? 'WINS ' : c.matched ? 'also ' : 'no   ';
      lines.push(`  ${mark} ${c.id}  [${c.match}]${c.failed ? `: ${c.failed}` : ''}`);
    }
  }
  if (p.winner) {
    for (const o of p.winner.over) lines.push(`  ${p.winner.id} wins over ${o.id}: ${o.rule}`);
    const a = p.winner.action;
    const filters = a.filters ?? [];
    lines.push(`filters, in order: ${filters.length ? filters.join(', ') : 'none'}`);
    if (a.requestHeaders) lines.push(`  request headers: ${JSON.stringify(a.requestHeaders)}`);
    if (a.rewrite) lines.push(`  rewrite: ${JSON.stringify(a.rewrite)}`);
    if (a.responseHeaders) lines.push(`  response headers: ${JSON.stringify(a.responseHeaders)}`);
    if (a.mirrors?.length) lines.push(`  mirrors (replayed after the answer, not in this run): ${a.mirrors.map((m) => `service #${m.service} ${m.percent} %`).join(', ')}`);
    if (a.timeouts) lines.push(`  timeouts (ms): ${JSON.stringify(a.timeouts)}`);
    if (a.retry) lines.push(`  retry: ${JSON.stringify(a.retry)}`);
  }
  const out = p.outcome;
  switch (out.kind) {
    case 'backend':
      lines.push('outcome:   a backend, chosen by weight:');
      for (const c of out.choices) lines.push(`    ${c.service ?? '(unusable backendRef: 500)'}  weight ${c.weight} (${pct(c.share)})${c.service !== null && c.endpoints === 0 ? '  no ready endpoint: 500' : c.service !== null ? `  ${c.endpoints} endpoint(s)` : ''}`);
      // The replay's stub backends speak clear text: backend TLS is named, not exercised.
      for (const c of out.choices.filter((x) => x.tls)) lines.push(`    ${c.service}: TLS to the endpoints (SNI ${c.tls?.sni}), not exercised by the replay`);
      break;
    case 'redirect':
      lines.push(`outcome:   redirect ${out.status}: ${out.location}`);
      break;
    default:
      lines.push(`outcome:   ${out.status}: ${out.why}`);
  }
  if (o) {
    lines.push(`varnishd:  ${o.status}${o.backend ? ` from ${o.backend.service}` : ''}`);
    const location = o.headers.find(([n]) => n.toLowerCase() === 'location');
    if (location) lines.push(`    Location: ${location[1]}`);
    if (o.backend) {
      lines.push(`    the backend got: ${o.backend.method} ${o.backend.url}`);
      for (const [n, v] of o.backend.headers) lines.push(`      ${n}: ${v}`);
    }
    const shown = o.headers.filter(([n]) => !/^(date|server|via|x-varnish|age|content-length|connection|accept-ranges)$/i.test(n));
    if (shown.length) lines.push('    response headers:', ...shown.map(([n, v]) => `      ${n}: ${v}`));
  }
  if (problems.length) {
    lines.push('DISAGREEMENT between the routing IR and varnishd (a bug, please report it):');
    for (const d of problems) lines.push(`  - ${d}`);
  } else if (o) {
    lines.push('varnishd agrees with the routing IR.');
  }
  return `${lines.join('\n')}\n`;
}
