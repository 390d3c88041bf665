/**
 * worker: in durable mode, the results this worker sent lately, for an owner whose inbox died with
 * a broker outage. Such an owner does not send its confirmed tasks again (their quorum queue kept
 * them, and one sent again would run twice: core/task-manager.ts lostWithConnection); it asks for
 * their results instead, and a result that was waiting in the lost inbox comes again from here.
 * Bounded by count and by the bytes of inline values, the oldest dropped first.
 */
import type { ResultMessage } from "../wire/messages";

export class RecentResults {
  private readonly kept = new Map<string, { result: ResultMessage; bytes: number }>();
  private bytes = 0;

  constructor(private readonly limits: { count: number; bytes: number }) {}

  keep(result: ResultMessage): void {
    let bytes = 64;
    for (const r of result.returns ?? []) if ("inline" in r) bytes += r.inline.length;
    this.drop(result.task);
    this.kept.set(result.task, { result, bytes });
    this.bytes += bytes;
    for (const [id] of this.kept) {
      if (this.kept.size <= this.limits.count && this.bytes <= this.limits.bytes) break;
      this.drop(id);
    }
  }

  /** The results of `tasks` still kept. */
  of(tasks: string[]): ResultMessage[] {
    return tasks.flatMap((id) => this.kept.get(id)?.result ?? []);
  }

  get size(): number {
    return this.kept.size;
  }

  private drop(id: string): void {
    const e = this.kept.get(id);
    if (!e) return;
    this.kept.delete(id);
    this.bytes -= e.bytes;
  }
}
