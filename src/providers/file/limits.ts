// Bounds on what the file provider reads, so a huge or hostile directory is refused with a clear
// error instead of exhausting memory. Parsing YAML costs far more memory than the text itself,
// so the bounds are on input bytes and object counts. The defaults leave room for the largest
// benchmark (10 000 HTTPRoutes in one routes.yaml, about 3 MiB).
export interface ManifestLimits {
  /** Largest manifest file read; a larger one is refused without being read. */
  maxFileBytes: number;
  /** Largest total size of the manifest files of one directory. */
  maxTotalBytes: number;
  /** Most manifest files in one directory (any depth). */
  maxFiles: number;
  /** Most Kubernetes objects (documents and List items) in one directory. */
  maxObjects: number;
}

const MiB = 1024 * 1024;

export const MANIFEST_LIMITS: Readonly<ManifestLimits> = Object.freeze({
  maxFileBytes: 4 * MiB,
  maxTotalBytes: 32 * MiB,
  maxFiles: 20_000,
  maxObjects: 50_000,
});

export function formatBytes(n: number): string {
  return n >= MiB ? `${(n / MiB).toFixed(n % MiB === 0 ? 0 : 1)} MiB` : `${n} bytes`;
}
