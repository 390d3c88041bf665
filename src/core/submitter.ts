/**
 * core: task submission (Ray's task_submission/). A task goes to the exchange of its resource
 * shape, an actor call or creation along its Route (the actor's mailbox, or the creation's
 * shape with its headers). A task waits for the arguments this process owns before it is sent
 * (PENDING_ARGS_AVAIL), so it never holds a worker idle; routed messages keep submission order
 * instead and leave pending refs for the actor to resolve.
 *
 * Invariant: the arguments are copied (encoded) at `.remote()`, as in Ray, whatever waits after.
 */
import { ObjectRef } from "../objects/ref";
import { encodeArgs, encodeHead, encodeTask, StoredObject } from "../wire/messages";
import { TaskIds, objectId } from "../wire/ids";
import { Kind } from "../wire/kinds";
import { publishSmall } from "../transport/frames";
import { sendAgainSoon } from "../transport/link";
import { encodeError, hasMarkers } from "../serialization";
import { INITIAL_TASK_STATE, nextTaskState } from "../lifecycle/task";
import { TaskContext, taskContext } from "./context";
import { DECLARED, Route, TaskTemplate } from "./template";
import type { TaskInfo } from "../wire/task-events";
import type { Sent, TaskRecord } from "./task-manager";
import type { Runtime } from "./runtime";

export class Submitter {
  readonly ids: TaskIds;
  /** Shapes whose queue this process has declared (or is declaring). */
  private readonly shapes = new Map<string, Promise<void>>();

  constructor(private readonly rt: Runtime) {
    this.ids = new TaskIds(rt.config.ownerId);
  }

  submit(t: TaskTemplate, args: unknown[], route?: Route): ObjectRef[] {
    const { objects, tasks } = this.rt;
    const owned = objects.owned;
    const taskId = this.ids.next();
    const ctx = taskContext.getStore();
    const head = this.headOf(t, ctx);
    // Values of ref arguments known now travel with it; those this process owns and awaits are
    // added when ready (the arguments themselves are copied now, into `argBytes`, as in Ray).
    let refs: { refArgs: number[]; resolved: Record<number, StoredObject> } | undefined;
    const resolveLater: number[] = [];
    for (let i = 0; i < args.length; i++) {
      const a = args[i];
      if (!(a instanceof ObjectRef)) continue;
      refs ??= { refArgs: [], resolved: {} };
      refs.refArgs.push(i);
      const now = owned.peek(a.hex());
      if (now) refs.resolved[i] = now;
      else if (!route && owned.has(a.hex())) resolveLater.push(i);
    }
    const argBytes = encodeArgs(args, t.name);
    const returns: string[] = [];
    for (let i = 1; i <= t.numReturns; i++) {
      const id = objectId(taskId, i);
      returns.push(id);
      owned.pending(id);
    }
    const actor = t.actor;
    const callee = actor?.method !== undefined ? actor.id : undefined;
    const info: TaskInfo = {
      task_id: taskId, name: t.name, func_or_class_name: actor?.create ? t.fn.name : actor?.method ? `${t.fn.name}.${actor.method}` : t.fn.name,
      type: actor?.create ? "ACTOR_CREATION_TASK" : actor ? "ACTOR_TASK" : "NORMAL_TASK",
      job_id: ctx?.jobId ?? this.rt.config.jobId, actor_id: actor?.id ?? null, parent_task_id: ctx?.taskId ?? null,
      required_resources: t.shape, creation_time_ms: Date.now(), end_time_ms: null, error_type: null, error_message: null,
    };
    const out = () => returns.map((id) => objects.track(new ObjectRef(id)));
    const rec: TaskRecord = { state: INITIAL_TASK_STATE, returns, name: t.name, actorId: callee, info };
    if (!tasks.add(taskId, rec)) return out();
    const waits: Promise<unknown>[] = [];
    if (hasMarkers(argBytes)) {
      const pins: string[] = [];
      waits.push(...objects.escape(args, pins));
      if (pins.length > 0) rec.pins = pins;
    }
    for (const i of resolveLater) {
      waits.push(new Promise<void>((res) => owned.onReady((args[i] as ObjectRef).hex(), (v) => { refs!.resolved[i] = v; res(); })));
    }
    const publish = () => {
      const rec = tasks.get(taskId);
      if (!rec) return; // cancelled while waiting
      rec.state = nextTaskState(rec.state, "ARGS_READY");
      rec.sent = {
        exchange: route ? route.exchange : this.rt.topo.tasks, key: route ? route.key : t.shape, body: encodeTask(head, taskId, argBytes, refs),
        name: t.name, attempt: 0, maxRetries: t.maxRetries, headers: route?.headers,
      };
      this.send(taskId, rec.sent);
    };
    if (route?.after) waits.push(route.after);
    else if (!route && this.shapes.get(t.shape) !== DECLARED) waits.push(this.ensureShape(t.shape));
    if (waits.length === 0) publish();
    else Promise.all(waits).then(publish, (err) => tasks.fail(taskId, encodeError(err)));
    return out();
  }

  /** The bytes of a template's head for the job submitting now: the caller's task's, else this driver's. */
  private headOf(t: TaskTemplate, ctx: TaskContext | undefined): Buffer {
    const job = ctx ? ctx.jobId : this.rt.config.jobId;
    const namespace = ctx ? ctx.namespace : this.rt.config.namespace;
    if (t.head?.job !== job || t.head.namespace !== namespace) {
      const { fn, name, numReturns, maxRetries, retryExceptions, actor } = t;
      t.head = { job, namespace, bytes: encodeHead({ job, namespace, fn, name, numReturns, maxRetries, retryExceptions, actor }) };
    }
    return t.head.bytes;
  }

  /** Publishes a task message (again, for a later attempt). */
  send(taskId: string, m: Sent): void {
    const props = { messageId: taskId, type: m.name, mandatory: m.exchange === "" };
    const headers = m.attempt === 0 && !m.headers ? undefined : { ...m.headers, attempt: m.attempt };
    const confirmed = this.rt.confirmCh;
    if (confirmed) {
      // Durable mode: persistent, and confirmed; one the broker could not keep is sent again.
      m.confirmed = false;
      confirmed.publish(m.exchange, m.key, m.body, { ...props, headers, persistent: true }, (err) => {
        if (err) sendAgainSoon(() => this.rt.tasks.resend([taskId]));
        else m.confirmed = true;
      });
      return;
    }
    const ch = this.rt.ch;
    if (!headers) return publishSmall(ch, m.exchange, m.key, m.body, props);
    ch.publish(m.exchange, m.key, m.body, { ...props, headers });
  }

  /** Declares a shape's queue once per process (once the broker is there) and tells the nodes it exists. */
  ensureShape(shape: string): Promise<void> {
    let p = this.shapes.get(shape);
    if (!p) {
      const { topo } = this.rt;
      p = this.rt.whenUp(async (ch) => {
        await topo.declareShape(ch, shape);
        ch.publish(topo.control, "all.shape", Buffer.from(shape), { type: Kind.shape });
        this.shapes.set(shape, DECLARED);
      });
      this.shapes.set(shape, p);
    }
    return p;
  }

  /** After a broker restart: the shapes' queues and bindings again (a restarted broker may have lost the exchange), before tasks are sent again. */
  async redeclareShapes(): Promise<void> {
    const { ch, topo } = this.rt;
    for (const [shape, p] of this.shapes) if (p === DECLARED) await topo.declareShape(ch, shape);
  }
}
