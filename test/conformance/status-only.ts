// Expectations of the upstream status-only conformance tests (cases.json lists them with prose
// only), written as status checks the harness evaluates against `vgw check`. Each entry follows
// the Go test of Gateway API v1.6.1 (conformance/tests/<name>.go and the helpers it calls in
// conformance/utils/kubernetes) and the test's `statusSummary`; `note` marks anything a check adds
// or leaves out relative to upstream.
//
// Tests that change a spec mid-test (the *ObservedGenerationBump tests, GatewayModifyListeners)
// have phases: the harness applies each phase's patches to the file it wrote, bumping
// metadata.generation by one per patched object as the API server would, and runs `check` again.
import type { Condition, StatusCheck, StatusOnlyTest } from './data.ts';

/** RFC 6902 JSON Patch operations, applied to one object between phases. */
export type PatchOp =
  | { op: 'add'; path: string; value: unknown }
  | { op: 'replace'; path: string; value: unknown }
  | { op: 'remove'; path: string }
  | { op: 'test'; path: string; value: unknown };

export interface ObjectPatch {
  kind: string;
  /** Absent for cluster-scoped kinds. */
  namespace?: string;
  name: string;
  /** The upstream change, for the report. */
  description: string;
  ops: PatchOp[];
}

export interface StatusPhase {
  /** Spec changes applied before this phase's `check`. */
  patches?: ObjectPatch[];
  checks: StatusCheck[];
}

export interface StatusOnlyExpectations {
  /**
   * Upstream sub-tests about HTTPS listeners that stand apart from the rest of the test, each
   * with its own label. Evaluated after the phases.
   */
  tlsParts?: { description: string; checks: StatusCheck[] }[];
  phases: StatusPhase[];
}

const INFRA = 'gateway-conformance-infra';
const WEB = 'gateway-conformance-web-backend';
const HTTPROUTE = 'gateway.networking.k8s.io/HTTPRoute';

const cond = (type: string, status: string, reason?: string): Condition => (reason ? { type, status, reason } : { type, status });
const acceptedTrue = cond('Accepted', 'True');
const resolvedTrue = cond('ResolvedRefs', 'True');

interface ListenerExpectation {
  name: string;
  supportedKinds: string[];
  conditions: Condition[];
  attachedRoutes: number;
}

// upstream GatewayStatusMustHaveListeners: exactly these listeners, by name.
function listeners(gateway: string, list: ListenerExpectation[], note?: string): StatusCheck {
  return { check: 'GatewayStatusListeners', gateway, listeners: list, ...(note ? { note } : {}) };
}

function listener(name: string, attachedRoutes: number, conditions: Condition[], supportedKinds = [HTTPROUTE]): ListenerExpectation {
  return { name, supportedKinds, conditions, attachedRoutes };
}

// upstream HTTPRouteMustHaveCondition: the condition on the parent entry for that Gateway.
function routeCondition(route: string, parent: string, condition: Condition): StatusCheck {
  return { check: 'HTTPRouteCondition', route, parent, condition };
}

function gatewayCondition(gateway: string, condition: Condition): StatusCheck {
  return { check: 'GatewayCondition', gateway, condition };
}

/** Every condition in the object's status carries metadata.generation (and that is `generation`). */
function latest(kind: string, object: string, generation?: number): StatusCheck {
  return { check: 'LatestObservedGeneration', kind, object, ...(generation === undefined ? {} : { generation }) };
}

// upstream NamespacesMustBeReady for one Gateway: Accepted and Programmed at the current generation.
function ready(gateway: string): StatusCheck[] {
  return [gatewayCondition(gateway, acceptedTrue), gatewayCondition(gateway, cond('Programmed', 'True'))];
}

/** The three checks of the "route must not attach" tests. */
function notAttached(route: string, gateway: string, accepted: Condition): StatusCheck[] {
  return [
    routeCondition(route, gateway, accepted),
    // upstream HTTPRouteMustHaveNoAcceptedParents
    { check: 'HTTPRouteNoAcceptedParents', route },
    // upstream GatewayMustHaveZeroRoutes
    { check: 'GatewayZeroRoutes', gateway },
  ];
}

// upstream BackendTLSPolicyMustHaveCondition: the condition on the policy's ancestor entry for the Gateway.
function policyCondition(policy: string, ancestor: string, condition: Condition | { type: string; status: string }): StatusCheck {
  return { check: 'BackendTLSPolicyCondition', policy, ancestor, condition };
}

export const STATUS_ONLY: Record<string, StatusOnlyExpectations> = {
  GatewayInvalidFrontendClientCertificateValidation: {
    phases: [
      {
        checks: [
          { check: 'GatewayListenerConditions', gateway: `${INFRA}/gateway-with-invalid-client-cert-validation`, listener: 'https', conditions: [resolvedTrue, acceptedTrue, cond('Programmed', 'True')] },
          ...(
            [
              ['https-unresolved', 'InvalidCACertificateRef'],
              ['https-invalid-kind', 'InvalidCACertificateKind'],
              ['https-grant-missing', 'RefNotPermitted'],
            ] as const
          ).map(([l, reason]): StatusCheck => ({
            check: 'GatewayListenerConditions',
            gateway: `${INFRA}/gateway-with-invalid-client-cert-validation`,
            listener: l,
            conditions: [cond('ResolvedRefs', 'False', reason), cond('Accepted', 'False', 'NoValidCACertificate'), cond('Programmed', 'False')],
          })),
        ],
      },
    ],
  },

  GatewayInvalidTLSBackendConfiguration: {
    phases: [
      {
        checks: (
          [
            ['nonexistent-secret', 'InvalidClientCertificateRef'],
            ['unsupported-group', 'InvalidClientCertificateRef'],
            ['unsupported-kind', 'InvalidClientCertificateRef'],
            ['malformed-secret', 'InvalidClientCertificateRef'],
            ['missing-reference-grant', 'RefNotPermitted'],
          ] as const
        ).flatMap(([g, reason]) => [
          latest('Gateway', `${INFRA}/gateway-client-certificate-${g}`),
          gatewayCondition(`${INFRA}/gateway-client-certificate-${g}`, cond('ResolvedRefs', 'False', reason)),
          gatewayCondition(`${INFRA}/gateway-client-certificate-${g}`, cond('Accepted', 'True', 'Accepted')),
        ]),
      },
    ],
  },

  BackendTLSPolicyObservedGenerationBump: {
    phases: [
      // upstream NamespacesMustBeReady, then the sanity check BackendTLSPolicyMustHaveLatestConditions.
      { checks: [...ready(`${INFRA}/same-namespace`), latest('BackendTLSPolicy', `${INFRA}/observed-generation-bump`, 1)] },
      {
        patches: [
          {
            kind: 'BackendTLSPolicy',
            namespace: INFRA,
            name: 'observed-generation-bump',
            description: 'spec.validation.hostname -> foo.example.com',
            ops: [{ op: 'replace', path: '/spec/validation/hostname', value: 'foo.example.com' }],
          },
        ],
        checks: [policyCondition(`${INFRA}/observed-generation-bump`, `${INFRA}/same-namespace`, { type: 'Accepted', status: 'True' }), latest('BackendTLSPolicy', `${INFRA}/observed-generation-bump`, 2)],
      },
    ],
  },

  HTTPRouteDisallowedKind: {
    phases: [
      {
        checks: [
          routeCondition(`${INFRA}/disallowed-kind`, `${INFRA}/tlsroutes-only`, cond('ResolvedRefs', 'True', 'ResolvedRefs')),
          ...notAttached(`${INFRA}/disallowed-kind`, `${INFRA}/tlsroutes-only`, cond('Accepted', 'False', 'NotAllowedByListeners')),
        ],
      },
    ],
  },

  HTTPRouteInvalidCrossNamespaceParentRef: {
    phases: [
      {
        checks: [
          // upstream HTTPRouteMustHaveResolvedRefsConditionsTrue
          routeCondition(`${WEB}/invalid-cross-namespace-parent-ref`, `${INFRA}/same-namespace`, cond('ResolvedRefs', 'True', 'ResolvedRefs')),
          ...notAttached(`${WEB}/invalid-cross-namespace-parent-ref`, `${INFRA}/same-namespace`, cond('Accepted', 'False', 'NotAllowedByListeners')),
        ],
      },
    ],
  },

  HTTPRouteInvalidParentRefNotMatchingListenerPort: {
    phases: [
      {
        checks: [
          routeCondition(`${INFRA}/httproute-listener-not-matching-route-port`, `${INFRA}/same-namespace`, cond('ResolvedRefs', 'True', 'ResolvedRefs')),
          ...notAttached(`${INFRA}/httproute-listener-not-matching-route-port`, `${INFRA}/same-namespace`, cond('Accepted', 'False', 'NoMatchingParent')),
        ],
      },
    ],
  },

  HTTPRouteInvalidParentRefNotMatchingSectionName: {
    phases: [{ checks: notAttached(`${INFRA}/httproute-listener-not-matching-section-name`, `${INFRA}/same-namespace`, cond('Accepted', 'False', 'NoMatchingParent')) }],
  },

  HTTPRouteInvalidParentRefSectionNameNotMatchingPort: {
    phases: [
      {
        checks: notAttached(
          `${INFRA}/httproute-listener-section-name-not-matching-port`,
          `${INFRA}/gateway-with-one-not-matching-port-and-section-name-route`,
          cond('Accepted', 'False', 'NoMatchingParent'),
        ),
      },
    ],
  },

  HTTPRouteObservedGenerationBump: {
    phases: [
      // upstream "Sanity check": HTTPRouteMustHaveLatestConditions before the patch.
      { checks: [latest('HTTPRoute', `${INFRA}/observed-generation-bump`, 1)] },
      {
        patches: [
          {
            kind: 'HTTPRoute',
            namespace: INFRA,
            name: 'observed-generation-bump',
            description: 'rules[0].backendRefs[0].name -> infra-backend-v2',
            ops: [
              { op: 'test', path: '/spec/rules/0/backendRefs/0/name', value: 'infra-backend-v1' },
              { op: 'replace', path: '/spec/rules/0/backendRefs/0/name', value: 'infra-backend-v2' },
            ],
          },
        ],
        checks: [
          routeCondition(`${INFRA}/observed-generation-bump`, `${INFRA}/same-namespace`, acceptedTrue),
          { ...routeCondition(`${INFRA}/observed-generation-bump`, `${INFRA}/same-namespace`, resolvedTrue), note: 'from the statusSummary: the new backend exists' },
          latest('HTTPRoute', `${INFRA}/observed-generation-bump`, 2),
        ],
      },
    ],
  },

  GatewayWithAttachedRoutes: {
    phases: [
      {
        checks: [
          // Both listeners select namespaces by kubernetes.io/metadata.name, which the API server (here: the product) must supply.
          listeners(`${INFRA}/gateway-with-one-attached-route`, [listener('http', 1, [acceptedTrue, resolvedTrue])]),
          listeners(`${INFRA}/gateway-with-two-attached-routes`, [listener('http', 2, [acceptedTrue, resolvedTrue])], 'http-route-not-accepted must not be counted'),
          routeCondition(`${INFRA}/http-route-not-accepted`, `${INFRA}/gateway-with-two-attached-routes`, cond('Accepted', 'False', 'NoMatchingListenerHostname')),
        ],
      },
    ],
    tlsParts: [
      {
        description: 'unresolved-gateway-with-one-attached-unresolved-route: HTTPS listener tls with a missing certificate Secret has attachedRoutes 1, and http-route-4 has ResolvedRefs=False',
        checks: [
          listeners(`${INFRA}/unresolved-gateway-with-one-attached-unresolved-route`, [listener('tls', 1, [cond('Programmed', 'False'), cond('ResolvedRefs', 'False')])]),
          routeCondition(`${INFRA}/http-route-4`, `${INFRA}/unresolved-gateway-with-one-attached-unresolved-route`, cond('ResolvedRefs', 'False')),
        ],
      },
    ],
  },

  GatewayWithAttachedRoutesWithPort8080: {
    phases: [
      {
        checks: [
          listeners(`${INFRA}/gateway-with-two-listeners-and-one-attached-route`, [
            listener('http-unattached', 0, [acceptedTrue, resolvedTrue]),
            listener('http', 1, [acceptedTrue, resolvedTrue]),
          ]),
        ],
      },
    ],
  },

  GatewayModifyListeners: {
    phases: [
      { checks: [...ready(`${INFRA}/gateway-add-listener`), latest('Gateway', `${INFRA}/gateway-add-listener`, 1), ...ready(`${INFRA}/gateway-remove-listener`), latest('Gateway', `${INFRA}/gateway-remove-listener`, 1)] },
      {
        patches: [
          {
            kind: 'Gateway',
            namespace: INFRA,
            name: 'gateway-add-listener',
            description: 'add listener http :80 hostname data.test.com',
            ops: [{ op: 'add', path: '/spec/listeners/-', value: { name: 'http', port: 80, protocol: 'HTTP', hostname: 'data.test.com', allowedRoutes: { namespaces: { from: 'All' } } } }],
          },
        ],
        checks: [
          ...ready(`${INFRA}/gateway-add-listener`),
          listeners(`${INFRA}/gateway-add-listener`, [listener('https', 1, [acceptedTrue, resolvedTrue]), listener('http', 1, [acceptedTrue, resolvedTrue])]),
          latest('Gateway', `${INFRA}/gateway-add-listener`, 2),
        ],
      },
      {
        patches: [
          {
            kind: 'Gateway',
            namespace: INFRA,
            name: 'gateway-remove-listener',
            description: 'remove listener https',
            ops: [
              { op: 'test', path: '/spec/listeners/0/name', value: 'https' },
              { op: 'remove', path: '/spec/listeners/0' },
            ],
          },
        ],
        checks: [
          ...ready(`${INFRA}/gateway-remove-listener`),
          listeners(`${INFRA}/gateway-remove-listener`, [listener('http', 1, [acceptedTrue, resolvedTrue])]),
          latest('Gateway', `${INFRA}/gateway-remove-listener`, 2),
        ],
      },
    ],
  },

  GatewayObservedGenerationBump: {
    phases: [
      { checks: [...ready(`${INFRA}/gateway-observed-generation-bump`), latest('Gateway', `${INFRA}/gateway-observed-generation-bump`, 1)] },
      {
        patches: [
          {
            kind: 'Gateway',
            namespace: INFRA,
            name: 'gateway-observed-generation-bump',
            description: 'add listener alternate :80 hostname foo.com',
            ops: [{ op: 'add', path: '/spec/listeners/-', value: { name: 'alternate', hostname: 'foo.com', port: 80, protocol: 'HTTP', allowedRoutes: { namespaces: { from: 'All' } } } }],
          },
        ],
        checks: [
          ...ready(`${INFRA}/gateway-observed-generation-bump`),
          listeners(
            `${INFRA}/gateway-observed-generation-bump`,
            [listener('http', 0, [acceptedTrue, resolvedTrue]), listener('alternate', 0, [acceptedTrue, resolvedTrue])],
            'not in upstream: shows the added listener was observed',
          ),
          latest('Gateway', `${INFRA}/gateway-observed-generation-bump`, 2),
        ],
      },
    ],
  },

  GatewayClassObservedGenerationBump: {
    phases: [
      // upstream GWCMustHaveAcceptedConditionAny: an Accepted condition of any status.
      { checks: [{ check: 'GatewayClassCondition', gatewayClass: 'gatewayclass-observed-generation-bump', condition: { type: 'Accepted' } }, latest('GatewayClass', 'gatewayclass-observed-generation-bump', 1)] },
      {
        patches: [
          {
            kind: 'GatewayClass',
            name: 'gatewayclass-observed-generation-bump',
            description: 'spec.description "old" -> "new"',
            ops: [
              { op: 'test', path: '/spec/description', value: 'old' },
              { op: 'replace', path: '/spec/description', value: 'new' },
            ],
          },
        ],
        checks: [
          { check: 'GatewayClassCondition', gatewayClass: 'gatewayclass-observed-generation-bump', condition: { type: 'Accepted' } },
          latest('GatewayClass', 'gatewayclass-observed-generation-bump', 2),
        ],
      },
    ],
  },

  GatewayInvalidRouteKind: {
    phases: [
      {
        checks: [
          listeners(`${INFRA}/gateway-only-invalid-route-kind`, [listener('http', 0, [cond('ResolvedRefs', 'False', 'InvalidRouteKinds')], [])]),
          listeners(`${INFRA}/gateway-supported-and-invalid-route-kind`, [listener('http', 0, [cond('ResolvedRefs', 'False', 'InvalidRouteKinds')])]),
        ],
      },
    ],
  },

  GatewayInvalidTLSConfiguration: {
    phases: [
      {
        checks: ['nonexistent-secret', 'unsupported-group', 'unsupported-kind', 'malformed-secret'].map((g) =>
          listeners(`${INFRA}/gateway-certificate-${g}`, [listener('https', 0, [cond('ResolvedRefs', 'False', 'InvalidCertificateRef')])]),
        ),
      },
    ],
  },

  GatewayListenerUnsupportedProtocol: {
    phases: [
      {
        checks: [
          latest('Gateway', `${INFRA}/gateway-only-unsupported-protocols`),
          gatewayCondition(`${INFRA}/gateway-only-unsupported-protocols`, cond('Accepted', 'False', 'ListenersNotValid')),
          listeners(`${INFRA}/gateway-only-unsupported-protocols`, [listener('invalid', 0, [cond('Accepted', 'False', 'UnsupportedProtocol')], [])]),
          latest('Gateway', `${INFRA}/gateway-supported-and-unsupported-protocols`),
          gatewayCondition(`${INFRA}/gateway-supported-and-unsupported-protocols`, cond('Accepted', 'True', 'ListenersNotValid')),
          listeners(`${INFRA}/gateway-supported-and-unsupported-protocols`, [
            listener('http', 0, [cond('Accepted', 'True', 'Accepted')]),
            listener('invalid', 0, [cond('Accepted', 'False', 'UnsupportedProtocol')], []),
          ]),
        ],
      },
    ],
  },

  // Evaluated where the Gateway has generated objects to look at: in cluster mode.
  GatewayInfrastructure: {
    phases: [
      {
        checks: [
          latest('Gateway', `${INFRA}/gateway-with-infrastructure-metadata`),
          { check: 'GatewayInfrastructureMetadata', gateway: `${INFRA}/gateway-with-infrastructure-metadata` },
        ],
      },
    ],
  },

  GatewayInvalidParametersRef: {
    phases: [
      {
        checks: [latest('Gateway', `${INFRA}/gateway-invalid-parameters-ref`), gatewayCondition(`${INFRA}/gateway-invalid-parameters-ref`, cond('Accepted', 'False', 'InvalidParameters'))],
      },
    ],
  },

  GatewaySecretInvalidReferenceGrant: {
    phases: [{ checks: [listeners(`${INFRA}/gateway-secret-invalid-reference-grant`, [listener('https', 0, [cond('ResolvedRefs', 'False', 'RefNotPermitted')])])] }],
  },

  GatewaySecretMissingReferenceGrant: {
    phases: [{ checks: [listeners(`${INFRA}/gateway-secret-missing-reference-grant`, [listener('https', 0, [cond('ResolvedRefs', 'False', 'RefNotPermitted')])])] }],
  },

  GatewaySecretReferenceGrantAllInNamespace: {
    phases: [{ checks: [listeners(`${INFRA}/gateway-secret-reference-grant-all-in-namespace`, [listener('https', 0, [cond('Programmed', 'True'), resolvedTrue])])] }],
  },

  GatewaySecretReferenceGrantSpecific: {
    phases: [{ checks: [listeners(`${INFRA}/gateway-secret-reference-grant-specific`, [listener('https', 0, [cond('Programmed', 'True'), resolvedTrue])])] }],
  },
};

/** The harness's expectations for a status-only test; structured checks in cases.json, if any, are the fallback. */
export function statusOnlyExpectations(test: Pick<StatusOnlyTest, 'name' | 'statusChecks'>): StatusOnlyExpectations | undefined {
  const own = Object.hasOwn(STATUS_ONLY, test.name) ? STATUS_ONLY[test.name] : undefined;
  if (own) return own;
  return test.statusChecks?.length ? { phases: [{ checks: test.statusChecks }] } : undefined;
}

// ------------------------------------------------------------------ JSON Patch

/** Applies RFC 6902 operations to a copy of `doc`; throws on a failed `test` or a missing path. */
export function applyPatch<T>(doc: T, ops: readonly PatchOp[]): T {
  let out = structuredClone(doc) as unknown;
  for (const op of ops) {
    const tokens = pointer(op.path);
    if (tokens.length === 0) {
      if (op.op === 'test') {
        if (!deepEqual(out, op.value)) throw new Error(`test ${op.path} failed`);
      } else if (op.op === 'remove') {
        throw new Error('cannot remove the whole document');
      } else {
        out = structuredClone(op.value);
      }
      continue;
    }
    const parent = resolve(out, tokens.slice(0, -1), op.path);
    const last = tokens[tokens.length - 1];
    if (Array.isArray(parent)) {
      const index = last === '-' && op.op === 'add' ? parent.length : arrayIndex(last, parent.length + (op.op === 'add' ? 1 : 0), op.path);
      if (op.op === 'add') parent.splice(index, 0, structuredClone(op.value));
      else if (op.op === 'remove') parent.splice(index, 1);
      else if (op.op === 'replace') parent[index] = structuredClone(op.value);
      else if (!deepEqual(parent[index], op.value)) throw new Error(`test ${op.path}: ${JSON.stringify(parent[index])} is not ${JSON.stringify(op.value)}`);
      continue;
    }
    if (!isObject(parent)) throw new Error(`${op.path}: parent is not an object or array`);
    const present = Object.hasOwn(parent, last);
    if (op.op !== 'add' && !present) throw new Error(`${op.path} does not exist`);
    if (op.op === 'add' || op.op === 'replace') parent[last] = structuredClone(op.value);
    else if (op.op === 'remove') delete parent[last];
    else if (!deepEqual(parent[last], op.value)) throw new Error(`test ${op.path}: ${JSON.stringify(parent[last])} is not ${JSON.stringify(op.value)}`);
  }
  return out as T;
}

function pointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw new Error(`JSON pointer ${JSON.stringify(path)} must start with /`);
  return path
    .slice(1)
    .split('/')
    .map((t) => t.replaceAll('~1', '/').replaceAll('~0', '~'));
}

function resolve(doc: unknown, tokens: string[], path: string): unknown {
  let at = doc;
  for (const t of tokens) {
    if (Array.isArray(at)) at = at[arrayIndex(t, at.length, path)];
    else if (isObject(at) && Object.hasOwn(at, t)) at = at[t];
    else throw new Error(`${path}: ${t} does not exist`);
  }
  return at;
}

function arrayIndex(token: string, size: number, path: string): number {
  if (!/^(0|[1-9][0-9]*)$/.test(token)) throw new Error(`${path}: ${token} is not an array index`);
  const i = Number(token);
  if (i >= size) throw new Error(`${path}: index ${i} out of range`);
  return i;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]));
  }
  return false;
}
