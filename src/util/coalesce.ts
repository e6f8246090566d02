// Runs a task now, or once more after the running one when asked again meanwhile: a burst of
// changes collapses into at most one extra run that sees the newest state.
export class Coalescer {
  private readonly task: () => Promise<void>;
  private readonly onError: (err: unknown) => void;
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = false;

  constructor(task: () => Promise<void>, onError: (err: unknown) => void) {
    this.task = task;
    this.onError = onError;
  }

  /** Resolves when a run that started after this call has finished. */
  run(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.task().catch(this.onError);
      } while (this.again && !this.stopped);
      this.running = null;
    })();
    return this.running;
  }

  /** No new runs; resolves when the current one (if any) has finished. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.running?.catch(() => undefined);
  }
}
