// What pod processes write, kept for tests (there is no `kubectl logs`: the API server has no
// pods/log). Bounded twice: the tail of each pod's output, and the most recent pods only, so a
// chatty process or a long session cannot grow the test runner's memory without limit. Logs
// outlive their pod: a test reads what a terminated pod said on its way out.

export const MAX_LOG_CHARS_PER_POD = 256 * 1024;
export const MAX_PODS_LOGGED = 200;

export class PodLogs {
  private readonly byPod = new Map<string, string>();

  append(podKey: string, text: string): void {
    let log = (this.byPod.get(podKey) ?? '') + text;
    if (log.length > MAX_LOG_CHARS_PER_POD) log = log.slice(log.length - MAX_LOG_CHARS_PER_POD);
    // Re-insert so the map's order is least recently written first.
    this.byPod.delete(podKey);
    this.byPod.set(podKey, log);
    while (this.byPod.size > MAX_PODS_LOGGED) this.byPod.delete(this.byPod.keys().next().value!);
  }

  get(podKey: string): string {
    return this.byPod.get(podKey) ?? '';
  }

  /** Every key with a log: `namespace/pod` and `namespace/pod/container`. */
  keys(): string[] {
    return [...this.byPod.keys()];
  }
}
