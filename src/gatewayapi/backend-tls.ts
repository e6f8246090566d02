// BackendTLSPolicy semantics: which Service ports the gateway must speak TLS to, with which
// server name, trust anchors and names to verify, and the status of every policy. Pure: the
// ConfigMaps and Secrets come from the snapshot. CA bundles and client certificates are read
// only to check that they parse; the IR names them and the data plane reads them itself.
import { X509Certificate } from 'node:crypto';
import type { IRObjectRef, IRServiceTLS } from '../ir/types.ts';
import { validHostname } from '../ir/limits.ts';
import { SERVICE_TLS_LIMITS } from '../ir/service-tls-schema.ts';
import { resolveCertificateRef } from './certificates.ts';
import { condition, mergeConditions } from './conditions.ts';
import { CONTROLLER_NAME } from './features.ts';
import type { BackendTLSPolicyObjectStatus, PreviousStatuses } from './status.ts';
import type { BackendTLSPolicy, Condition, ConfigMap, Gateway, ReferenceGrant, Secret, ServicePort } from './types.ts';
import { GATEWAY_GROUP } from './types.ts';

export const CA_CERT_KEY = 'ca.crt';

/** How one policy reads, before conflicts: what it would apply, and its two conditions. */
interface PolicyVerdict {
  policy: BackendTLSPolicy;
  /** Settings to apply, or null when traffic to the targets must fail (no valid trust anchor,
   *  nothing checkable). */
  tls: Omit<IRServiceTLS, 'clientCertificate'> | null;
  accepted: [boolean, string, string];
  resolvedRefs: [boolean, string, string];
  conflicted?: string;
}

/** The policy that applies to a Service port, as the translator needs it. */
export type PortTLS = { ok: true; tls: Omit<IRServiceTLS, 'clientCertificate'> } | { ok: false; message: string };

export class BackendTlsPolicies {
  private readonly verdicts: PolicyVerdict[] = [];
  /** Winning policy by "namespace/service|sectionName" ("" for the whole Service). */
  private readonly byTarget = new Map<string, PolicyVerdict>();

  constructor(policies: readonly BackendTLSPolicy[], configMaps: readonly ConfigMap[]) {
    const maps = new Map(configMaps.map((c) => [`${c.metadata.namespace}/${c.metadata.name}`, c]));
    // Precedence: the older policy, then the name first in alphabetical order.
    const sorted = [...policies].sort((a, b) => {
      const ta = a.metadata.creationTimestamp ?? '';
      const tb = b.metadata.creationTimestamp ?? '';
      if (ta !== tb) return ta < tb ? -1 : 1;
      return a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0;
    });
    for (const policy of sorted) {
      const verdict = evaluatePolicy(policy, maps);
      this.verdicts.push(verdict);
      for (const t of policy.spec.targetRefs) {
        if (t.group !== '' || t.kind !== 'Service') continue;
        const k = targetKey(policy.metadata.namespace as string, t.name, t.sectionName ?? '');
        const winner = this.byTarget.get(k);
        if (winner) {
          verdict.conflicted ??= `BackendTLSPolicy ${winner.policy.metadata.name} already targets Service ${t.name}${t.sectionName ? ` port ${t.sectionName}` : ''}`;
        } else {
          this.byTarget.set(k, verdict);
        }
      }
    }
  }

  /** Whether any policy targets the Service (used for the appProtocol check). */
  targets(namespace: string, service: string): boolean {
    return this.verdicts.some((v) => v.policy.metadata.namespace === namespace && v.policy.spec.targetRefs.some((t) => t.group === '' && t.kind === 'Service' && t.name === service));
  }

  /** The policy for one port: the one naming its port (sectionName) wins over a Service-wide one. */
  forPort(namespace: string, service: string, port: ServicePort | undefined): PortTLS | undefined {
    const v = (port?.name ? this.byTarget.get(targetKey(namespace, service, port.name)) : undefined) ?? this.byTarget.get(targetKey(namespace, service, ''));
    if (!v) return undefined;
    if (!v.tls) return { ok: false, message: `BackendTLSPolicy ${v.policy.metadata.name}: ${v.accepted[2]}` };
    return { ok: true, tls: v.tls };
  }

  /**
   * Status of every policy: one ancestor entry per Gateway of ours whose routes use a Service
   * the policy targets (`ancestors` maps "namespace/service" to Gateway keys "namespace/name").
   */
  statuses(ancestors: ReadonlyMap<string, ReadonlySet<string>>, now: string, previous?: PreviousStatuses): BackendTLSPolicyObjectStatus[] {
    const out: BackendTLSPolicyObjectStatus[] = [];
    for (const v of this.verdicts) {
      const ns = v.policy.metadata.namespace as string;
      const gateways = new Set<string>();
      for (const t of v.policy.spec.targetRefs) for (const g of ancestors.get(`${ns}/${t.name}`) ?? []) gateways.add(g);
      if (gateways.size === 0) continue;
      const gen = v.policy.metadata.generation ?? 1;
      const accepted: [boolean, string, string] = v.conflicted ? [false, 'Conflicted', v.conflicted] : v.accepted;
      const before = previous?.backendTLSPolicy?.(ns, v.policy.metadata.name);
      out.push({
        apiVersion: v.policy.apiVersion,
        kind: 'BackendTLSPolicy',
        metadata: { name: v.policy.metadata.name, namespace: ns, generation: gen },
        status: {
          ancestors: [...gateways].sort().map((g) => {
            const [gns, gname] = g.split('/');
            const ancestorRef = { group: GATEWAY_GROUP, kind: 'Gateway', namespace: gns, name: gname };
            const old = before?.ancestors.find((a) => a.ancestorRef.namespace === gns && a.ancestorRef.name === gname);
            const conditions: Condition[] = [condition('Accepted', ...accepted, gen), condition('ResolvedRefs', ...v.resolvedRefs, gen)];
            return { ancestorRef, controllerName: CONTROLLER_NAME, conditions: mergeConditions(old?.conditions, conditions, now) };
          }),
        },
      });
    }
    return out;
  }
}

function targetKey(namespace: string, service: string, section: string): string {
  return `${namespace}/${service}|${section}`;
}

function evaluatePolicy(policy: BackendTLSPolicy, configMaps: ReadonlyMap<string, ConfigMap>): PolicyVerdict {
  const ns = policy.metadata.namespace as string;
  const v = policy.spec.validation;
  const notes: string[] = [];

  // Names to verify: the Hostname subjectAltNames when given, else validation.hostname.
  let hostnames: string[];
  const sans = v.subjectAltNames ?? [];
  if (sans.length) {
    hostnames = [];
    for (const s of sans) {
      if (s.type === 'URI') notes.push(`subjectAltName URI ${JSON.stringify(s.uri ?? '')} is not supported and never matches`);
      else if (s.hostname && validHostname(s.hostname, false) !== null) notes.push(`subjectAltName ${s.hostname}: wildcard names are not supported and never match`);
      else if (s.hostname && !hostnames.includes(s.hostname)) hostnames.push(s.hostname);
    }
  } else {
    hostnames = [v.hostname];
  }
  hostnames = hostnames.slice(0, SERVICE_TLS_LIMITS.hostnames);

  let verify: IRServiceTLS['verify'] | null = null;
  let resolvedRefs: [boolean, string, string] = [true, 'ResolvedRefs', 'All references are resolved'];
  let noValidCa = '';
  const refs = v.caCertificateRefs ?? [];
  if (refs.length) {
    const valid: IRObjectRef[] = [];
    const problems: { reason: string; message: string }[] = [];
    for (const ref of refs) {
      const what = `caCertificateRef ${ref.group ? `${ref.group}/` : ''}${ref.kind} ${ref.name}`;
      if (ref.group !== '' || ref.kind !== 'ConfigMap') {
        problems.push({ reason: 'InvalidKind', message: `${what}: only core ConfigMaps are supported` });
        continue;
      }
      const problem = caBundleProblem(configMaps.get(`${ns}/${ref.name}`));
      if (problem) problems.push({ reason: 'InvalidCACertificateRef', message: `${what}: ${problem}` });
      else valid.push({ namespace: ns, name: ref.name });
    }
    if (problems.length) resolvedRefs = [false, problems[0].reason, problems.map((p) => p.message).join('; ')];
    if (valid.length) verify = { caCertificates: valid };
    else noValidCa = `no valid CA certificate: ${problems.map((p) => p.message).join('; ')}`;
  } else if (v.wellKnownCACertificates === 'System') {
    verify = { system: true };
  }

  let accepted: [boolean, string, string];
  if (noValidCa) accepted = [false, 'NoValidCACertificate', noValidCa];
  else if (!verify) accepted = [false, 'Invalid', 'wellKnownCACertificates must be System'];
  else if (hostnames.length === 0) accepted = [false, 'Invalid', `no subjectAltName can be verified: ${notes.join('; ')}`];
  else accepted = [true, 'Accepted', notes.length ? `Policy is accepted; ${notes.join('; ')}` : 'Policy is accepted'];
  const tls = accepted[0] && verify ? { sni: v.hostname, verify, hostnames } : null;
  return { policy, tls, accepted, resolvedRefs };
}

/** Why a ConfigMap's `ca.crt` cannot serve as a trust anchor, or null. Never quotes its content. */
export function caBundleProblem(map: ConfigMap | undefined): string | null {
  if (!map) return 'ConfigMap not found';
  const pem = map.data?.[CA_CERT_KEY];
  if (pem === undefined) return `ConfigMap has no ${CA_CERT_KEY}`;
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) return `${CA_CERT_KEY} holds no PEM certificate`;
  for (const b of blocks) {
    try {
      new X509Certificate(b);
    } catch {
      return `${CA_CERT_KEY} holds a certificate that does not parse`;
    }
  }
  return null;
}

/** The Gateway's backend client certificate, or why it cannot be used (Gateway ResolvedRefs). */
export type ClientCertificateResolution = { ok: true; ref?: IRObjectRef } | { ok: false; reason: 'InvalidClientCertificateRef' | 'RefNotPermitted'; message: string };

export function resolveClientCertificate(gw: Gateway, secrets: ReadonlyMap<string, Secret>, grants: readonly ReferenceGrant[]): ClientCertificateResolution {
  const ref = gw.spec.tls?.backend?.clientCertificateRef;
  if (!ref) return { ok: true };
  const r = resolveCertificateRef(gw.metadata.namespace as string, ref, secrets, grants);
  if (r.ok) return { ok: true, ref: { namespace: r.ref.namespace, name: r.ref.name } };
  const message = `spec.tls.backend.clientCertificateRef: ${r.message.replace(/^certificateRef /, '')}`;
  return { ok: false, reason: r.reason === 'RefNotPermitted' ? 'RefNotPermitted' : 'InvalidClientCertificateRef', message };
}
