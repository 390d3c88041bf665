#!/usr/bin/env node
/**
 * cli: the `warren` command (Ray's `ray start/stop/status/list/summary/timeline/logs`). Each command group is a
 * module: nodes.ts (start, stop), query.ts (status, list, summary, timeline), logs.ts (logs), broker.ts (broker start, stop,
 * status), run-program.ts (run); format.ts prints. Exit codes: 0 done, 1 failed, 2 bad usage (unknown command or
 * option, bad value).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { Argument, Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { OptionsError } from "../errors";
import { validateInitOptions } from "../options";
import { nodeResources } from "../node/resources";
import { dashboardOptions } from "../head/dashboard";
import { brokerAddress } from "../transport";
import type { Predicate } from "../api/state";
import { PACKAGE_ROOT, UsageError, resolveTarget } from "./common";
import * as broker from "./broker";
import { MAX_CLUSTER_NODES } from "./rabbitmq-cluster";
import { start, stop } from "./nodes";
import { cleanup } from "./cleanup";
import { runProgram } from "./run-program";
import { Format, Kind, list, status, summary, timeline } from "./query";
import { logs } from "./logs";
import { LATEST_SESSION } from "../core/paths";

const EXIT = { ok: 0, failed: 1, usage: 2 } as const;
/** What the action that ran returned. */
let exitCode: number = EXIT.ok;
const run = <A extends unknown[]>(fn: (...args: A) => Promise<number>) => async (...args: A) => {
  exitCode = await fn(...args);
};

// ---- argument parsers (a bad value is a usage error, exit 2) --------------------------------

function number(value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n)) throw new InvalidArgumentError(`must be a number (got ${JSON.stringify(value)})`);
  return n;
}

function count(value: string): number {
  const n = number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`must be an integer >= 0 (got ${value})`);
  return n;
}

function positive(value: string): number {
  const n = count(value);
  if (n < 1) throw new InvalidArgumentError(`must be an integer >= 1 (got ${value})`);
  return n;
}

function nodeId(value: string): string {
  if (!/^[0-9a-f]+$/.test(value)) throw new InvalidArgumentError(`must be a node id or the start of one, hex digits as \`warren list nodes\` shows (got ${JSON.stringify(value)})`);
  return value;
}

function port(value: string): number {
  const n = count(value);
  if (n > 65535) throw new InvalidArgumentError(`must be a TCP port, 0 to 65535 (got ${value})`);
  return n;
}

function clusterSize(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n < 1 || n > MAX_CLUSTER_NODES) {
    throw new InvalidArgumentError(`must be a whole number of RabbitMQ nodes from 1 to ${MAX_CLUSTER_NODES} (got ${JSON.stringify(value)})`);
  }
  return n;
}

function bool(value: string): boolean {
  if (value !== "true" && value !== "false") throw new InvalidArgumentError(`must be true or false (got ${JSON.stringify(value)})`);
  return value === "true";
}

function json(value: string): Record<string, number> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (err) {
    throw new InvalidArgumentError(`must be a JSON object like '{"Custom1": 1}' (${(err as Error).message})`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new InvalidArgumentError(`must be a JSON object like '{"Custom1": 1}' (got ${value})`);
  }
  return parsed as Record<string, number>;
}

function filter(value: string, previous: Array<[string, Predicate, string]>): Array<[string, Predicate, string]> {
  const m = /^([^=!]+?)\s*(!=|=)\s*(.*)$/.exec(value);
  if (!m) throw new InvalidArgumentError(`must be key=value or key!=value, like state=FINISHED (got ${JSON.stringify(value)})`);
  return [...previous, [m[1].trim(), m[2] as Predicate, m[3]]];
}

/** The option names init() validation reports, as the CLI spells them. */
const FLAG: Record<string, string> = {
  numCpus: "--num-cpus", numGpus: "--num-gpus", memory: "--memory", objectStoreMemory: "--object-store-memory",
  resources: "--resources", address: "--address", cluster: "--cluster",
  includeDashboard: "--include-dashboard", dashboardPort: "--dashboard-port", dashboardHost: "--dashboard-host",
};

/** Validates the node flags with init()'s rules, reporting problems by flag name. */
function nodeOptions(o: Record<string, unknown>) {
  try {
    return validateInitOptions(Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)));
  } catch (err) {
    if (!(err instanceof OptionsError)) throw err;
    const problems = err.problems.map((p) => {
      const [field, ...rest] = p.field.split(/(?=[.[])/);
      return `${FLAG[field] ?? field}${rest.join("")}: ${p.problem.replace(/use the (\w+) option/, (_, f) => `use ${FLAG[f] ?? f}`)}`;
    });
    throw new UsageError(`invalid ${problems.join("; ")}`);
  }
}

function version(): string {
  return (JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, "package.json"), "utf8")) as { version: string }).version;
}

// ---- the program ------------------------------------------------------------------------

function program(): Command {
  const prog = new Command("warren")
    .description("warren: Ray's programming model for Node on RabbitMQ. Start and stop nodes, and look at a cluster.")
    .version(version())
    .exitOverride()
    .enablePositionalOptions()
    .showHelpAfterError("(add --help for usage)")
    .showSuggestionAfterError(true);

  const address = () => new Option("--address <url>", "the RabbitMQ broker, or the comma-separated URLs of one RabbitMQ cluster's nodes, tried in turn (default: $WARREN_ADDRESS, else amqp://guest:guest@127.0.0.1:5672)");
  const clusterName = (what: string) => new Option("--cluster <name>", what);

  prog
    .command("start")
    .description("start a node daemon on this machine: the head of a new cluster (--head), or a node joining one (--address/--cluster)")
    .option("--head", "start the head node of a new cluster")
    .addOption(address())
    .addOption(clusterName('the cluster\'s name (default: "default")'))
    .option("--num-cpus <n>", "CPUs of this node (default: this machine's)", number)
    .option("--num-gpus <n>", "GPUs of this node (default: the NVIDIA GPUs found)", number)
    .option("--memory <bytes>", "memory tasks and actors may reserve (default: 70% of this machine's)", number)
    .option("--object-store-memory <bytes>", "object store size (default: 30% of this machine's memory)", number)
    .option("--resources <json>", "custom resources, a JSON object like '{\"Custom1\": 1}'", json)
    .option("--object-manager-port <port>", "the TCP port other nodes fetch this node's objects from (default: one the system picks)", port)
    .option("--block", "stay in the foreground until the node exits (Ctrl-C stops it)")
    .option("--dashboard-port <n>", "with --head: the web dashboard's port (default: 8265, or the next free one after it; 0 picks a free one)", count)
    .option("--dashboard-host <host>", "with --head: the interface the dashboard listens on (default: 127.0.0.1, this machine only; 0.0.0.0 for every one)")
    .option("--include-dashboard <bool>", "with --head: serve the web dashboard (default: true)", bool)
    .option("--durable", "with --head: durable mode, for a RabbitMQ cluster (quorum queues, persistent task messages with confirms); nodes and drivers that join take the head's setting")
    .addHelpText("after", "\nExamples:\n  warren start --head --num-cpus 4\n  warren start --head --dashboard-port 0\n  warren start --head --durable --address amqp://u:p@rabbit1:5672,amqp://u:p@rabbit2:5672,amqp://u:p@rabbit3:5672\n  warren start --address amqp://user:pass@host:5672 --cluster default --resources '{\"Custom1\": 1}'")
    .action(run(async (o) => {
      if (!o.head && o.address === undefined && o.cluster === undefined) {
        throw new UsageError("pass --head to start a new cluster, or --address and --cluster to join a running one");
      }
      if (o.durable && !o.head) throw new UsageError("--durable goes with --head: a node that joins takes its head's setting");
      const dashboard = { includeDashboard: o.includeDashboard, dashboardPort: o.dashboardPort, dashboardHost: o.dashboardHost };
      const given = Object.entries(dashboard).filter(([, v]) => v !== undefined).map(([k]) => FLAG[k]);
      if (given.length && !o.head) throw new UsageError(`${given.join(", ")} go${given.length === 1 ? "es" : ""} with --head: the head serves the cluster's dashboard`);
      const v = nodeOptions({ address: o.address, cluster: o.cluster, numCpus: o.numCpus, numGpus: o.numGpus, memory: o.memory, objectStoreMemory: o.objectStoreMemory, resources: o.resources, ...dashboard });
      const resources = nodeResources({ numCpus: v.numCpus, numGpus: v.numGpus, memory: v.memory, objectStoreMemory: v.objectStoreMemory, resources: v.resources });
      return start({ head: Boolean(o.head), address: brokerAddress(v.address), cluster: v.cluster ?? "default", resources, block: Boolean(o.block), durable: Boolean(o.durable), objectManagerPort: o.objectManagerPort , dashboard: o.head ? dashboardOptions(v) : undefined });
    }));

  prog
    .command("stop")
    .description("stop the warren nodes this machine started (SIGTERM, then SIGKILL after 10 s)")
    .addOption(clusterName("only the nodes of this cluster (default: all)"))
    .option("--force", "SIGKILL at once")
    .action(run(async (o) => {
      if (o.cluster !== undefined) nodeOptions({ cluster: o.cluster });
      return stop({ cluster: o.cluster, force: Boolean(o.force) });
    }));

  prog
    .command("cleanup")
    .description("list and remove what dead clusters left: their queues and exchanges on the broker, their folders on this machine")
    .addOption(address())
    .addOption(clusterName("only this cluster (default: every dead one whose folder has not changed for a minute)"))
    .option("--dry-run", "list what would be removed, remove nothing")
    .addHelpText("after", "\nA cluster is dead when none of its processes runs on this machine and no head holds its head queue.\nExamples:\n  warren cleanup --dry-run\n  warren cleanup --cluster local-3f2a9c1b2d4e")
    .action(run(async (o) => {
      const v = nodeOptions({ address: o.address, cluster: o.cluster });
      return cleanup({ address: brokerAddress(v.address), cluster: v.cluster, dryRun: Boolean(o.dryRun) });
    }));

  const queryOptions = (c: Command) =>
    c.addOption(address()).addOption(clusterName('the cluster (default: the one this machine started, else "default")'));
  const target = (o: { address?: string; cluster?: string }) => {
    nodeOptions({ address: o.address, cluster: o.cluster });
    return resolveTarget(o);
  };

  queryOptions(
    prog.command("status").description("the cluster's nodes, resource usage, and pending and infeasible demands (like `ray status`)"),
  ).action(run((o) => status(target(o))));

  const format = () => new Option("--format <format>", "output format").choices(["table", "json"]).default("table");

  queryOptions(
    prog
      .command("list")
      .description("list tasks, actors, objects or nodes of the cluster (like `ray list`)")
      .addArgument(new Argument("<resource>", "what to list").choices(["tasks", "actors", "objects", "nodes", "jobs"]))
      .option("--filter <key=value>", "keep rows whose key equals (=) or differs from (!=) value; repeatable", filter, [])
      .option("--limit <n>", "at most this many rows", count, 100)
      .option("--detail", "all columns, not only the main ones")
      .addOption(format())
      .addHelpText("after", "\nExamples:\n  warren list tasks --filter state=FINISHED\n  warren list nodes --filter state!=DEAD --format json"),
  ).action(run((kind: Kind, o) => list(target(o), kind, { filters: o.filter, limit: o.limit, detail: Boolean(o.detail), format: o.format as Format })));

  queryOptions(
    prog
      .command("summary")
      .description("tasks per function, actors per class, objects per status (like `ray summary`)")
      .addArgument(new Argument("<resource>", "what to summarize").choices(["tasks", "actors", "objects"]))
      .addOption(format()),
  ).action(run((kind: "tasks" | "actors" | "objects", o) => summary(target(o), kind, o.format as Format)));

  queryOptions(
    prog
      .command("timeline")
      .description("write the cluster's task runs as Chrome trace events, for Perfetto or chrome://tracing (like `ray timeline`)")
      .requiredOption("-o, --output <file>", "the JSON file to write")
      .addHelpText("after", "\nExample:\n  warren timeline --cluster prod -o trace.json   # then open trace.json in https://ui.perfetto.dev"),
  ).action(run((o) => timeline(target(o), o.output)));

  queryOptions(
    prog
      .command("logs")
      .description("print the output of the cluster's nodes and workers, prefixed (name pid=N) as drivers print it (like `ray logs`)")
      .option("--node <id>", "only this node (its id, or the start of it)", nodeId)
      .option("--task <id>", "only what this task printed")
      .option("--actor <id>", "only what this actor printed")
      .option("--tail <n>", "the last n lines of each file", positive, 100)
      .option("--follow", "then print new lines as they come, until interrupted")
      .addHelpText("after", "\nA node's files are in its session folder (`warren start` prints it); a private cluster keeps its last\nsession's after shutdown in " + LATEST_SESSION + ".\nExamples:\n  warren logs --tail 20\n  warren logs --task 5f0c3a9e1b2d4c6f0000000000000001\n  warren logs --node 3f2a9c --follow"),
  ).action(run((o) => logs(target(o), { node: o.node, task: o.task, actor: o.actor, tail: o.tail, follow: Boolean(o.follow) })));

  prog
    .command("run")
    .description("run a TypeScript or JavaScript program with the tsx warren ships (no tsx or ts-node of your own needed)")
    .argument("<file>", "the program, e.g. app.ts")
    .argument("[args...]", "passed to the program")
    .passThroughOptions() // options after <file> are the program's, --help included
    .action(run((file: string, args: string[]) => runProgram(file, args)));

  const brokerGroup = prog
    .command("broker")
    .description("make sure a RabbitMQ broker answers where warren expects one (what `npm run broker` runs)")
    .addHelpText("after", broker.HELP.broker);
  const clusterNodes = () =>
    new Option("--nodes <n>", `how many nodes: 1, or a local RabbitMQ cluster of 2 to ${MAX_CLUSTER_NODES} on the target port and the ones after it`)
      .argParser(clusterSize)
      .default(1);
  brokerGroup
    .command("start")
    .description("check the target address; start a project-local broker if nothing answers there")
    .addOption(clusterNodes())
    .addHelpText("after", broker.HELP.start)
    .action(run((o: { nodes: number }) => broker.start(o.nodes)));
  brokerGroup
    .command("stop")
    .description("stop the project-local broker `start` started for the target port")
    .addOption(clusterNodes())
    .addHelpText("after", broker.HELP.stop)
    .action(run((o: { nodes: number }) => broker.stop(o.nodes)));
  brokerGroup
    .command("status")
    .description("say whether the target address answers and whether the project-local broker runs")
    .addOption(clusterNodes())
    .addHelpText("after", broker.HELP.status)
    .action(run((o: { nodes: number }) => broker.status(o.nodes)));

  return prog;
}

/** Runs the CLI; resolves with the exit code. */
export async function main(argv: string[]): Promise<number> {
  try {
    await program().parseAsync(argv);
    return exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here too; any other commander error (already printed) is bad usage.
      return err.code === "commander.helpDisplayed" || err.code === "commander.version" ? EXIT.ok : EXIT.usage;
    }
    if (err instanceof UsageError) {
      console.error(`error: ${err.message}\n(add --help for usage)`);
      return EXIT.usage;
    }
    console.error(`error: ${(err as Error)?.message ?? String(err)}`);
    if (process.env.WARREN_DEBUG && err instanceof Error) console.error(err.stack);
    return EXIT.failed;
  }
}

if (require.main === module) {
  // Exit at once: stdout and stderr are synchronous for files and pipes, so nothing is lost.
  void main(process.argv).then((code) => process.exit(code));
}
