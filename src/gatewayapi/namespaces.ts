// allowedRoutes.namespaces: which namespaces' routes a listener accepts.
import type { AllowedRoutes, LabelSelector } from './types.ts';

const NAME_LABEL = 'kubernetes.io/metadata.name';

export function namespaceAllowed(
  allowed: AllowedRoutes | undefined,
  gatewayNamespace: string,
  routeNamespace: string,
  namespaceLabels: Map<string, Record<string, string>>,
): boolean {
  const from = allowed?.namespaces?.from ?? 'Same';
  if (from === 'All') return true;
  if (from === 'Same') return gatewayNamespace === routeNamespace;
  if (from === 'Selector') {
    const selector = allowed?.namespaces?.selector;
    if (!selector) return false;
    // Kubernetes adds this label to every Namespace; standalone mode synthesizes it.
    const labels = { ...(namespaceLabels.get(routeNamespace) ?? {}), [NAME_LABEL]: routeNamespace };
    return selectorMatches(selector, labels);
  }
  return false;
}

export function selectorMatches(selector: LabelSelector, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) {
    if (labels[k] !== v) return false;
  }
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const values = e.values ?? [];
    switch (e.operator) {
      case 'In':
        if (!has || !values.includes(labels[e.key])) return false;
        break;
      case 'NotIn':
        if (has && values.includes(labels[e.key])) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}
