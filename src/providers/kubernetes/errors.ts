// client-node reports HTTP failures as ApiException with `code`; older paths use `statusCode`.

/** The HTTP status of a failed Kubernetes API call, if it got that far. */
export function apiStatusCode(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown } | null;
  const code = e?.code ?? e?.statusCode;
  return typeof code === 'number' ? code : undefined;
}
