/**
 * A local RabbitMQ cluster of several project-local nodes on one machine (`warren broker start
 * --nodes N`): N LocalNodes (rabbitmq.ts) on the AMQP ports PORT, PORT+1, ..., each with the
 * name, management, Prometheus and distribution ports a node on that port has anyway, its own
 * folder under .warren/broker/cluster-PORT/, and the cluster's one HOME (cluster-PORT/home/, the
 * Erlang cookie). The first member is the one the others join (`rabbitmqctl stop_app;
 * join_cluster FIRST; start_app`). Nothing here prints: broker.ts says what happens.
 *
 * Invariant: every file of the cluster lies under its folder, so that removing the folder after
 * its nodes stopped removes the cluster and nothing else.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { WarrenError } from "../errors";
import type { BrokerTarget } from "./broker-address";
import { Installation, LocalNode, STATE_DIR } from "./rabbitmq";

/** The most nodes `--nodes` accepts: a development cluster on one machine, not a fleet. */
export const MAX_CLUSTER_NODES = 9;

export class LocalCluster {
  /** cluster-PORT/ under the state directory, PORT the first member's. */
  readonly dir: string;
  /** The first member, which the others join, then the others in port order. */
  readonly members: LocalNode[];

  constructor(target: BrokerTarget, size: number) {
    if (target.port + size - 1 > 65535) {
      throw new WarrenError(`port ${target.port} is too high for a cluster of ${size} nodes on ports ${target.port} to ${target.port + size - 1}; pick a lower WARREN_BROKER_PORT`);
    }
    this.dir = path.join(STATE_DIR, `cluster-${target.port}`);
    this.members = Array.from({ length: size }, (_, i) => new LocalNode({ ...target, port: target.port + i }, this.dir));
  }

  get first(): LocalNode {
    return this.members[0];
  }

  /** The nodes that `node` sees running in its cluster, itself included; undefined when rabbitmqctl cannot ask it. */
  runningNodes(install: Installation, node: LocalNode): string[] | undefined {
    const r = node.ctl(install, "cluster_status", "--formatter", "json");
    if (!r.ok) return undefined;
    try {
      const status = JSON.parse(r.output) as { running_nodes?: unknown };
      return Array.isArray(status.running_nodes) ? status.running_nodes.map(String) : undefined;
    } catch {
      return undefined;
    }
  }

  /** Whether `node` runs in the first member's cluster (the first member always does). */
  joined(install: Installation, node: LocalNode): boolean {
    return node === this.first || (this.runningNodes(install, node) ?? []).includes(this.first.name);
  }

  /** Makes a running member join the first member's cluster; throws with rabbitmqctl's words when a step fails. */
  join(install: Installation, node: LocalNode): void {
    for (const args of [["stop_app"], ["join_cluster", this.first.name], ["start_app"]]) {
      const r = node.ctl(install, ...args);
      if (!r.ok) throw new WarrenError(`\`rabbitmqctl -n ${node.name} ${args.join(" ")}\` failed: ${r.output}\n${node.logTail()}`);
    }
  }

  /** Removes the cluster's folder: every member's data, logs and configuration, and the cookie. Stop the members first. */
  remove(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
