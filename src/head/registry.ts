/**
 * head: the registry (Ray's GCS tables). What the head knows of the cluster: nodes (registered,
 * heartbeating, alive or dead), the resource shapes announced in it, named actors (one name, one
 * actor: the head decides, one request at a time) and actor lifecycles. It answers the requests
 * of wire/head.ts from memory; head/server.ts serves them and watches the nodes.
 *
 * Given a store (head/store.ts), it saves each actor, node and shape when it changes, and starts
 * from what the store holds: a head started again for the cluster knows what it knew.
 * Shapes are saved only when announced through announceShape.
 */
import { createActor } from "xstate";
import { BoundedSet } from "../bounded";
import { WarrenError } from "../errors";
import { type ActorLifecycle, endedLifecycle, startActorLifecycle } from "../lifecycle/actor";
import { NodeState, nodeMachine, startNodeLifecycle } from "../lifecycle/node";
import { Resources, add, fits, parseShape } from "../scheduling/shape";
import type { HandleInfo } from "../wire/descriptors";
import type {
  ActorCreationMessage, ActorEvent, ActorInfo, ActorRow, ActorState, Handlers, HeadRequests, JobRow, JobStart, NodeInfo, NodeSummary, Peer, RegisterActor, Registered,
} from "../wire/head";
import type { ActorFields, RegistryStore, SavedRegistry } from "./store";

export interface ActorRecord extends ActorFields {
  lifecycle: ActorLifecycle;
}

export interface NodeRecord {
  info: NodeInfo;
  available: Resources;
  /** Tasks running there whose deliveries are acked: lost if the node dies, so their owners must hear. */
  acked: Set<string>;
  lastSeen: number;
  lifecycle: ReturnType<typeof startNodeLifecycle>;
}

export class HeadRegistry {
  private readonly actors = new Map<string, ActorRecord>();
  private readonly named = new Map<string, string>();
  private readonly nodes = new Map<string, NodeRecord>();
  /** Every job (driver) the cluster has had, by id. */
  private readonly jobs = new Map<string, JobRow>();
  /**
   * The dead actors kept, oldest death first: past `deadKept` the oldest is dropped from `actors`
   * and the store, as Ray's GCS caps its destroyed actors. Live and restarting ones are all kept.
   */
  private readonly dead: BoundedSet<string>;
  /** Every resource shape announced, with when it was first seen. */
  readonly shapes = new Map<string, number>();

  /** With a store, starts from what it holds and saves every change to it. Keeps `deadKept` dead actors (HEAD_DEFAULTS.deadActorsKept). */
  constructor(private readonly store: RegistryStore | undefined, deadKept: number) {
    this.dead = new BoundedSet(deadKept, (id) => this.forget(id));
    if (store) this.restore(store.load());
  }

  /** The requests answered from the registry alone (the head's server adds what needs the broker). */
  readonly handlers: Omit<Handlers<HeadRequests>, "shape.demand" | "node.register" | "cluster.info" | "actor.kill" | "job.end" | "task.events" | "task.history"> = {
    "actor.register": (p) => this.register(p),
    "actor.get": (p) => this.getNamed(p.name, p.namespace),
    "actor.event": (p) => this.onEvent(p.id, p.event, p.creation),
    "actor.info": (p) => this.info(p.id),
    "node.heartbeat": (p) => this.heartbeat(p.nodeId, p.available, p.acked),
    "node.running": (p) => void this.nodes.get(p.nodeId)?.acked.add(p.task),
    "node.available": (p) => void this.nodeAvailable(p.nodeId, p.available),
    "node.list": () => this.listNodes(),
    "node.acked": (p) => [...(this.nodes.get(p.nodeId)?.acked ?? [])],
    "shape.list": () => [...this.shapes.keys()],
    "shape.infeasible": () => this.infeasibleShapes(),
    "actor.list": () => this.actorRows(),
    "job.start": (p) => this.startJob(p),
    "job.list": () => [...this.jobs.values()],
    "resources.total": () => this.totals(false),
    "resources.available": () => this.totals(true),
  };

  /**
   * Actors in their saved state; nodes as if just heard from, so the head's silence check
   * decides whether they are still alive (their heartbeats bring back what is free and acked).
   */
  private restore(saved: SavedRegistry): void {
    for (const { lifecycle, ...a } of saved.actors) {
      this.actors.set(a.handle.id, { ...a, lifecycle: startActorLifecycle(lifecycle) });
      if (this.state(a.handle.id) === "DEAD") this.dead.add(a.handle.id);
      else if (a.name !== undefined) this.named.set(`${a.namespace}/${a.name}`, a.handle.id);
    }
    const now = Date.now();
    for (const { info, lifecycle } of saved.nodes) {
      this.nodes.set(info.nodeId, { info, available: { ...info.resources }, acked: new Set(), lastSeen: now, lifecycle: createActor(nodeMachine, { snapshot: lifecycle }).start() });
    }
    for (const { shape, firstSeen } of saved.shapes) this.shapes.set(shape, firstSeen);
    for (const j of saved.jobs) this.jobs.set(j.job_id, j);
  }

  private saveActor(a: ActorRecord): void {
    const { lifecycle, ...rest } = a;
    this.store?.putActor({ ...rest, lifecycle: lifecycle.getPersistedSnapshot() });
  }

  private saveNode(n: NodeRecord): void {
    this.store?.putNode({ info: n.info, lifecycle: n.lifecycle.getPersistedSnapshot() });
  }

  /** A shape announced on the control exchange; the first announcement of each is kept. */
  announceShape(shape: string): void {
    if (this.shapes.has(shape)) return;
    const firstSeen = Date.now();
    this.shapes.set(shape, firstSeen);
    this.store?.putShape({ shape, firstSeen });
  }

  /** A node joins; one declared dead before stays dead, as its actors and tasks went elsewhere. */
  registerNode(info: NodeInfo): { shapes: string[]; dead: boolean } {
    if (this.nodeState(info.nodeId) === "DEAD") return { shapes: [], dead: true };
    const n: NodeRecord = { info, available: { ...info.resources }, acked: new Set(), lastSeen: Date.now(), lifecycle: startNodeLifecycle() };
    this.nodes.set(info.nodeId, n);
    this.saveNode(n);
    return { shapes: [...this.shapes.keys()], dead: false };
  }

  /** A node's report; the answer is what its peers have free, for its spillback decisions, and whether it is known, or dead. */
  heartbeat(nodeId: string, available: Resources, acked: string[]): { peers: Peer[]; known: boolean; dead: boolean } {
    const n = this.nodes.get(nodeId);
    if (n && this.nodeAvailable(nodeId, available)) {
      n.acked = new Set(acked);
      n.lastSeen = Date.now();
    }
    const peers = this.aliveNodes().filter((p) => p.info.nodeId !== nodeId).map((p) => ({ nodeId: p.info.nodeId, available: p.available }));
    return { peers, known: n !== undefined, dead: this.nodeState(nodeId) === "DEAD" };
  }

  /** What an alive node has free now (from its heartbeat, or sooner); false if it is unknown or dead. */
  private nodeAvailable(nodeId: string, available: Resources): boolean {
    const n = this.nodes.get(nodeId);
    if (!n || this.nodeState(nodeId) === "DEAD") return false;
    n.available = available;
    return true;
  }

  nodeState(nodeId: string): NodeState | undefined {
    return this.nodes.get(nodeId)?.lifecycle.getSnapshot().value as NodeState | undefined;
  }

  /** Marks a node dead; returns the tasks lost with it (acked there), or undefined if it already was dead. */
  nodeDied(nodeId: string): string[] | undefined {
    const n = this.nodes.get(nodeId);
    if (!n || this.nodeState(nodeId) === "DEAD") return undefined;
    n.lifecycle.send({ type: "DIED" });
    this.saveNode(n);
    const lost = [...n.acked];
    n.acked.clear();
    return lost;
  }

  aliveNodes(): NodeRecord[] {
    return [...this.nodes.values()].filter((n) => n.lifecycle.getSnapshot().value === "ALIVE");
  }

  listNodes(): NodeSummary[] {
    return [...this.nodes.values()].map((n) => {
      const alive = n.lifecycle.getSnapshot().value === "ALIVE";
      return {
        NodeID: n.info.nodeId,
        Alive: alive,
        NodeManagerAddress: n.info.ip,
        NodeManagerHostname: n.info.hostname,
        ObjectStorePath: n.info.storePath,
        MetricsExportPort: n.info.metricsPort,
        ObjectManagerPort: n.info.objectManager.port,
        Resources: alive ? n.info.resources : {},
        IsHead: n.info.isHead,
        ...(alive && n.info.dashboardUrl && { DashboardURL: n.info.dashboardUrl }),
      };
    });
  }

  /** Sum over alive nodes of their totals, or of what is free now (Ray leaves out what is 0). */
  totals(available: boolean): Resources {
    let sum: Resources = {};
    for (const n of this.aliveNodes()) sum = add(sum, available ? n.available : n.info.resources);
    if (available) for (const k of Object.keys(sum)) if (!(sum[k] > 0)) delete sum[k];
    return sum;
  }

  /** Shapes no alive node could ever run: Ray's infeasible demands. */
  infeasibleShapes(): string[] {
    return [...this.shapes.keys()].filter((s) => this.infeasible(s));
  }

  infeasible(shape: string): boolean {
    const demand = parseShape(shape);
    return !this.aliveNodes().some((n) => fits(demand, n.info.resources));
  }

  register(p: RegisterActor): Registered {
    // The same request again (its asker's connection was lost before the answer came).
    if (this.actors.has(p.handle.id)) return { created: true, handle: this.actors.get(p.handle.id)!.handle };
    if (p.name !== undefined) {
      const key = `${p.namespace}/${p.name}`;
      const existing = this.named.get(key);
      if (existing && this.state(existing) !== "DEAD") {
        if (p.getIfExists) return { created: false, handle: this.actors.get(existing)!.handle };
        throw new WarrenError(
          `the actor name "${p.name}" is already taken in namespace "${p.namespace}": use ` +
            `warren.getActor("${p.name}", { namespace: "${p.namespace}" }) to get it, getIfExists: true to get or create it, or another name`,
        );
      }
      this.named.set(key, p.handle.id);
    }
    const a: ActorRecord = { handle: p.handle, owner: p.owner, job: p.job, name: p.name, namespace: p.namespace, detached: p.detached, lifecycle: startActorLifecycle() };
    this.actors.set(p.handle.id, a);
    this.saveActor(a);
    return { created: true, handle: p.handle };
  }

  getNamed(name: string, namespace: string): HandleInfo | null {
    const id = this.named.get(`${namespace}/${name}`);
    return id && this.state(id) !== "DEAD" ? this.actors.get(id)!.handle : null;
  }

  onEvent(id: string, event: ActorEvent, creation?: ActorCreationMessage): void {
    const a = this.actors.get(id);
    if (!a) return;
    if (creation) a.creation = creation;
    a.lifecycle.send(event);
    const dead = this.state(id) === "DEAD";
    if (dead) {
      // Never to change or restart again: kept small, as the head keeps up to deadActorsKept of them.
      a.lifecycle = endedLifecycle(a.lifecycle);
      a.creation = undefined;
    }
    this.saveActor(a);
    if (dead) this.dead.add(id);
  }

  /** Drops a dead actor pushed out of `dead`: its calls then fail as to an unknown actor's. */
  private forget(id: string): void {
    const a = this.actors.get(id)!;
    this.actors.delete(id);
    const key = `${a.namespace}/${a.name}`;
    if (a.name !== undefined && this.named.get(key) === id) this.named.delete(key);
    this.store?.deleteActor(id);
  }

  info(id: string): ActorInfo | null {
    const a = this.actors.get(id);
    if (!a) return null;
    const snap = a.lifecycle.getSnapshot();
    return { state: snap.value as ActorState, cause: snap.context.cause, className: a.handle.className };
  }

  /**
   * Resolves once the current incarnation of actor `id` is over: it is DEAD, or, when it may
   * restart, RESTARTING (its worker is gone, calls wait in the mailbox for the next one).
   */
  incarnationOver(id: string, mayRestart: boolean): Promise<void> {
    const lifecycle = this.actors.get(id)!.lifecycle;
    return new Promise((resolve) => {
      const sub = lifecycle.subscribe((s) => {
        if (s.value !== "DEAD" && !(mayRestart && s.value === "RESTARTING")) return;
        sub.unsubscribe();
        resolve();
      });
    });
  }

  state(id: string): ActorState | undefined {
    return this.actors.get(id)?.lifecycle.getSnapshot().value as ActorState | undefined;
  }

  /** Ray's actor columns for the state API. */
  actorRows(): ActorRow[] {
    return this.list().map((a) => {
      const snap = a.lifecycle.getSnapshot();
      return {
        actor_id: a.handle.id,
        class_name: a.handle.className,
        state: snap.value as ActorState,
        name: a.name ?? "",
        ray_namespace: a.namespace,
        node_id: snap.context.nodeId ?? null,
        pid: snap.context.pid ?? null,
        num_restarts: snap.context.restarts,
        is_detached: a.detached,
        death_cause: snap.context.cause?.message.split("\n")[0] ?? null,
      };
    });
  }

  startJob(j: JobStart): void {
    const row: JobRow = { ...j, type: "DRIVER", status: "RUNNING", message: null, start_time: Date.now(), end_time: null };
    this.jobs.set(j.job_id, row);
    this.store?.putJob(row);
  }

  /** Ends a running job; false if it was not running (unknown, or ended already). */
  endJob(jobId: string, status: "SUCCEEDED" | "FAILED", message: string): boolean {
    const row = this.jobs.get(jobId);
    if (row?.status !== "RUNNING") return false;
    Object.assign(row, { status, message, end_time: Date.now() });
    this.store?.putJob(row);
    return true;
  }

  /** Whether `id` is a job's id (its driver's owner id). */
  isJob(id: string): boolean {
    return this.jobs.has(id);
  }

  /** Who a state query waits for (transport/rpc.ts gather): the alive nodes and running drivers. */
  alive(): Record<string, string> {
    const who: Record<string, string> = {};
    for (const n of this.aliveNodes()) who[`node:${n.info.nodeId}`] = `node ${n.info.nodeId}`;
    for (const j of this.runningJobs()) who[j.job_id] = `the driver of job ${j.job_id} (pid ${j.driver_pid} on ${j.driver_node_hostname})`;
    return who;
  }

  runningJobs(): JobRow[] {
    return [...this.jobs.values()].filter((j) => j.status === "RUNNING");
  }

  /** The live non-detached actors of a job: they die when it ends. */
  actorsOfJob(jobId: string): ActorRecord[] {
    return this.list().filter((a) => a.job === jobId && !a.detached && this.state(a.handle.id) !== "DEAD");
  }

  /** Owners of live non-detached actors: when an owner is gone, its actors go too. */
  actorOwners(): Map<string, ActorRecord[]> {
    const owners = new Map<string, ActorRecord[]>();
    for (const a of this.actors.values()) {
      if (a.detached || this.state(a.handle.id) === "DEAD") continue;
      owners.set(a.owner, [...(owners.get(a.owner) ?? []), a]);
    }
    return owners;
  }

  actorsOn(nodeId: string): ActorRecord[] {
    return this.list().filter((a) => a.lifecycle.getSnapshot().context.nodeId === nodeId && this.state(a.handle.id) === "ALIVE");
  }

  list(): ActorRecord[] {
    return [...this.actors.values()];
  }
}
