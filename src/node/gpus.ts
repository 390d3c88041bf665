/**
 * Which GPUs a task or actor gets, like Ray: whole GPUs for a demand of 1 or more, a share of one
 * GPU for a fraction (several fractional tasks may share it). Amounts in 1e-4 units, so ten tasks
 * of 0.1 fill one GPU exactly.
 */
const UNIT = 10_000;

export class GpuPool {
  private readonly free: Map<number, number>;

  constructor(ids: number[]) {
    this.free = new Map(ids.map((id) => [id, UNIT]));
  }

  /** The ids for `amount` GPUs, taken; undefined if they are not free now. */
  allocate(amount: number): number[] | undefined {
    const units = Math.round(amount * UNIT);
    if (units <= 0) return [];
    if (units >= UNIT) {
      if (units % UNIT !== 0) return undefined; // Ray: more than one GPU must be a whole number
      const whole = [...this.free].filter(([, f]) => f === UNIT).slice(0, units / UNIT).map(([id]) => id);
      if (whole.length < units / UNIT) return undefined;
      for (const id of whole) this.free.set(id, 0);
      return whole;
    }
    // A fraction goes to the fullest GPU it still fits on, leaving whole GPUs whole.
    const fit = [...this.free].filter(([, f]) => f >= units).sort((a, b) => a[1] - b[1])[0];
    if (!fit) return undefined;
    this.free.set(fit[0], fit[1] - units);
    return [fit[0]];
  }

  release(ids: number[], amount: number): void {
    const each = ids.length > 1 ? UNIT : Math.round(amount * UNIT);
    for (const id of ids) this.free.set(id, Math.min(UNIT, (this.free.get(id) ?? 0) + each));
  }
}

/**
 * The ids of a node's `count` GPUs: those CUDA_VISIBLE_DEVICES lists where the node was started
 * with it (Ray does the same), else 0..count-1.
 */
export function gpuIds(count: number, visible = process.env.CUDA_VISIBLE_DEVICES): number[] {
  const listed = (visible ?? "").split(",").map((s) => s.trim()).filter((s) => /^\d+$/.test(s)).map(Number);
  return listed.length >= count && count > 0 ? listed.slice(0, count) : Array.from({ length: count }, (_, i) => i);
}
