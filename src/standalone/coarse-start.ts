// The first config of a large gateway goes live as a few large shard VCLs, and is split to its
// normal shard count once it serves. varnishd compiles one VCL at a time over its CLI and each
// VCL costs a fixed amount (VCC set-up, a compiler process, loading the object) on top of its
// size, so at start-up, when nothing serves yet, fewer VCLs mean a sooner first 200. The split
// follows at once, in the background: the normal count is what keeps a later route change
// cheap (it recompiles one small shard). Shard labels carry the count (shardLabel), so the
// coarse set keeps answering until the dispatcher of the split set is in use.

/** Shard VCLs of the first config, at most (the split brings the normal count). */
export const START_SHARDS = 8;

export class CoarseStart {
  private readonly max: number;
  private phase: 'first' | 'split-due' | 'done' = 'first';

  /** `max`: shard VCLs of the first config, at most; at least 2 (a sharded start stays sharded). */
  constructor(max = START_SHARDS) {
    if (!Number.isInteger(max) || max < 2) throw new Error(`start shard count must be an integer of at least 2, not ${max}`);
    this.max = max;
  }

  /** The shard cap for the render about to be made; undefined once the first config is live. */
  get cap(): number | undefined {
    return this.phase === 'first' ? this.max : undefined;
  }

  /** The live config is coarser than its normal count: the next apply must render again. */
  get splitDue(): boolean {
    return this.phase === 'split-due';
  }

  /**
   * A config went live with `deployed` shard VCLs where `wanted` is its normal count (0 and 1
   * both mean unsharded). True when this made a split due: the owner applies once more.
   */
  live(deployed: number, wanted: number): boolean {
    if (this.phase === 'first' && Math.max(deployed, 1) < Math.max(wanted, 1)) {
      this.phase = 'split-due';
      return true;
    }
    this.phase = 'done';
    return false;
  }
}
