/** Cluster state as Ray shows it: nodes and resources, answered by the head's registry. */
import type { Resources } from "../scheduling/shape";
import type { NodeSummary } from "../state/registry";
import { Runtime } from "./runtime";

export type { NodeSummary };

/** One entry per node ever seen, dead ones with `Alive: false` and empty `Resources`. */
export function nodes(): Promise<NodeSummary[]> {
  return Runtime.current.rpc("node.list", {});
}

/** Total resources of the alive nodes. */
export function clusterResources(): Promise<Resources> {
  return Runtime.current.rpc("resources.total", {});
}

/** Resources free now on the alive nodes (as of their last report, at most half a second old); none at 0. */
export function availableResources(): Promise<Resources> {
  return Runtime.current.rpc("resources.available", {});
}
