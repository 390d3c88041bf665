/**
 * The borrower's side of reference counting: ObjectRefs this process received inside the
 * arguments of a task or actor call from their own owner. When the call ends, its result tells
 * the owner which of them this process may still hold (`held`); the owner keeps each such object
 * until this process says it dropped it (a release, sent once every ObjectRef of it here was
 * collected). A borrowed ref this process put into a message of its own (a nested task's
 * arguments, a return value, a put) is `passedOn`: it is never released, so its owner keeps it
 * until the owner exits, as whoever received it is not known here.
 */
interface Loan {
  owner: string;
  /** Live ObjectRefs of it in this process. */
  live: number;
  passedOn: boolean;
}

export class BorrowTable {
  private readonly loans = new Map<string, Loan>();
  /** Loans whose last ObjectRef was collected: released at the next `takeReleases`, if none came back meanwhile. */
  private readonly dropped = new Set<string>();

  get size(): number {
    return this.loans.size;
  }

  /** A live ObjectRef of `id`, owned by `owner`, now exists in this process. */
  add(id: string, owner: string): void {
    const loan = this.loans.get(id);
    if (loan) loan.live++;
    else this.loans.set(id, { owner, live: 1, passedOn: false });
  }

  /** One of the ObjectRefs `add` counted was collected. */
  drop(id: string): void {
    const loan = this.loans.get(id);
    if (loan && --loan.live === 0 && !loan.passedOn) this.dropped.add(id);
  }

  /** Put into a message of this process: kept for good. False if it is no loan of this process. */
  passOn(id: string): boolean {
    const loan = this.loans.get(id);
    if (loan) loan.passedOn = true;
    return loan !== undefined;
  }

  /** Of `ids`, those this process may still hold, to report to their owner as a call ends. */
  held(ids: string[]): string[] {
    return ids.filter((id) => {
      const loan = this.loans.get(id);
      return loan !== undefined && (loan.live > 0 || loan.passedOn);
    });
  }

  /** Whether some loan may yet be dropped here and released. */
  get outstanding(): boolean {
    for (const loan of this.loans.values()) if (loan.live > 0 && !loan.passedOn) return true;
    return false;
  }

  /** The loans dropped since the last call, forgotten now, by owner: what to release. */
  takeReleases(): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const id of this.dropped) {
      const loan = this.loans.get(id);
      if (!loan || loan.live > 0 || loan.passedOn) continue;
      this.loans.delete(id);
      const ids = out.get(loan.owner);
      if (ids) ids.push(id);
      else out.set(loan.owner, [id]);
    }
    this.dropped.clear();
    return out;
  }
}
