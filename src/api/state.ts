/**
 * Cluster state as Ray shows it (`warren.nodes()`, `warren.state.*`): the queries of
 * core/state.ts, asked through this process's runtime.
 */
import { currentRuntime } from "../core/current";
import { stateQueries } from "../core/state";

export type { JobRow, NodeSummary } from "../wire/head";
export type { Filters, Gathered, ListOptions, Predicate, TaskRow, TaskSummary } from "../core/state";

const queries = stateQueries(() => currentRuntime().rpc);

export const { nodes, clusterResources, availableResources } = queries;

/** `warren.state`: Ray's state API. */
export const state = queries.state;
