// Misdirected requests on HTTPS listeners (GEP-3567, RFC 9110 §15.5.20): the TLS handshake chose
// a listener by SNI, and a request whose Host belongs to a different listener of the same
// address:port gets 421, so a client that reused the connection for another name (HTTP/2
// connection coalescing, or a Host that does not match the SNI) retries on a connection of its
// own instead of reaching routes the certificate it saw was not chosen for.
//
// Both names pick a listener by the Gateway API rule: exact hostname, then the longest matching
// wildcard suffix, then the listener without hostname. The SNI comes from the PROXY v2 header the
// terminator sends (vmod_proxy); a connection without SNI is not checked, since it selected no
// listener by name.
import type { IRSocket } from '../ir/types.ts';
import { regexLiteral, vclRegex, vclString } from './escape.ts';

const H_SNI = 'req.http.x-vgw-sni';
const H_SNI_LISTENER = 'req.http.x-vgw-sni-listener';
const H_HOST_LISTENER = 'req.http.x-vgw-host-listener';
/** Stands for "no listener of this socket matches the name". Not a hostname, so never a listener's. */
const NO_LISTENER = '-';

/** The listener hostnames of a TLS socket that can disagree with each other, or none. */
export function misdirectionListeners(socket: IRSocket): string[] {
  const listeners = socket.tls?.listeners ?? [];
  // A lone listener without hostname takes every name: nothing to disagree about.
  return listeners.length === 0 || (listeners.length === 1 && listeners[0] === '*') ? [] : listeners;
}

/**
 * VCL lines for vcl_recv, after the request's socket (`socketHeader`) and lowercase host
 * (`hostHeader`) are known and before routing. Empty when no TLS socket needs the check.
 */
export function misdirectedRequestVcl(sockets: readonly IRSocket[], proxySocket: string, socketHeader: string, hostHeader: string): string[] {
  const checked = sockets.map((s) => ({ socket: s, listeners: misdirectionListeners(s) })).filter((x) => x.listeners.length);
  if (checked.length === 0) return [];
  const out: string[] = [];
  // A regex match, not a comparison with "": without SNI proxy.authority() is NULL, and a NULL
  // string compares unequal to everything while it matches as the empty string.
  out.push(`if (local.socket == ${vclString(proxySocket)} && proxy.authority() ~ ".") {`);
  out.push(`  set ${H_SNI} = std.tolower(proxy.authority());`);
  checked.forEach(({ socket, listeners }, i) => {
    out.push(`  ${i === 0 ? 'if' : '} elsif'} (${socketHeader} == ${vclString(socket.name)}) {`);
    for (const l of listenerChain(listeners, H_SNI, H_SNI_LISTENER)) out.push(`    ${l}`);
    for (const l of listenerChain(listeners, hostHeader, H_HOST_LISTENER)) out.push(`    ${l}`);
  });
  out.push('  } else {');
  // A socket whose listeners cannot disagree.
  out.push(`    set ${H_SNI_LISTENER} = ${vclString(NO_LISTENER)};`);
  out.push(`    set ${H_HOST_LISTENER} = ${vclString(NO_LISTENER)};`);
  out.push('  }');
  out.push(`  if (${H_SNI_LISTENER} != ${H_HOST_LISTENER}) {`);
  out.push('    return (synth(421));');
  out.push('  }');
  out.push('}');
  return out;
}

/** Sets `target` to the hostname of the listener `name` selects (NO_LISTENER for none). */
function listenerChain(listeners: readonly string[], name: string, target: string): string[] {
  const exact = listeners.filter((h) => !h.startsWith('*'));
  // Longest suffix first: "*.a.example.com" is more specific than "*.example.com".
  const wildcards = listeners.filter((h) => h.startsWith('*.')).sort((a, b) => b.length - a.length || (a < b ? -1 : 1));
  const conditions: [string, string][] = [
    ...exact.map((h): [string, string] => [`${name} == ${vclString(h)}`, h]),
    // "*.example.com" takes one or more labels in place of "*", never none.
    ...wildcards.map((h): [string, string] => [`${name} ~ ${vclRegex(`^[^.]+(?:\\.[^.]+)*\\.${regexLiteral(h.slice(2))}$`)}`, h]),
  ];
  const fallback = listeners.includes('*') ? '*' : NO_LISTENER;
  if (conditions.length === 0) return [`set ${target} = ${vclString(fallback)};`];
  const lines: string[] = [];
  conditions.forEach(([cond, h], i) => {
    lines.push(`${i === 0 ? 'if' : '} elsif'} (${cond}) {`);
    lines.push(`  set ${target} = ${vclString(h)};`);
  });
  lines.push('} else {', `  set ${target} = ${vclString(fallback)};`, '}');
  return lines;
}
