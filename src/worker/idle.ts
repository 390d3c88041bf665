/**
 * Something to do once nothing has happened for a while: a worker's lease ends, its title goes back
 * to IDLE. One timer, checked when it fires rather than cleared and set again on every task:
 * a timer per task is paid by every task.
 */
export class IdleAfter {
  private last = 0;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly ms: number,
    /** While this says so, nothing is idle; `touch()` again once it is over. */
    private readonly busy: () => boolean,
    private readonly onIdle: () => void,
  ) {}

  /** Something happened now: `onIdle` runs `ms` after the last touch, unless busy then. */
  touch(): void {
    this.last = performance.now();
    this.timer ??= this.arm(this.ms);
  }

  private arm(ms: number): NodeJS.Timeout {
    const timer = setTimeout(this.check, ms);
    timer.unref();
    return timer;
  }

  private readonly check = (): void => {
    this.timer = undefined;
    if (this.busy()) return;
    const wait = this.last + this.ms - performance.now();
    if (wait > 0) this.timer = this.arm(wait);
    else this.onIdle();
  };
}
