/**
 * Entry of a node daemon process: `WARREN_NODE` holds its NodeConfig as JSON. Started by
 * `init()` (a private cluster's head, as a child with an IPC channel) or by `warren start`.
 */
import * as path from "node:path";
import { NodeDaemon } from "./daemon";
import type { NodeConfig } from "./options";
import { rotationFromEnv, takeOverOutput } from "../core/log-files";

const config: NodeConfig = JSON.parse(process.env.WARREN_NODE ?? "null");
if (!config) {
  console.error("warren node: WARREN_NODE is not set; start nodes with `warren start` or `warren.init()`");
  process.exit(2);
}
process.title = `warren::node${config.isHead ? "(head)" : ""}`;
try {
  takeOverOutput(path.join(config.sessionDir, "node.log"), rotationFromEnv());
} catch (err) {
  console.error(`warren node: ${(err as Error).message}`);
  process.exit(2);
}
const daemon = new NodeDaemon(config, () => process.exit(0));

function stop(): void {
  daemon.stop().catch((err) => {
    console.error("warren node: error while stopping:", err);
    process.exit(1);
  });
}

process.on("SIGTERM", stop);
process.on("SIGINT", stop);
// A private cluster lives exactly as long as the driver that started it.
if (config.private) process.on("disconnect", stop);

daemon.start().then(
  () => {
    console.log(`node ${config.nodeId} of cluster "${config.cluster}" started (pid=${process.pid}); its workers' output: ${path.join(config.sessionDir, "logs")}`);
    process.send?.({ t: "ready", nodeId: config.nodeId, storePath: daemon.storePath, restored: daemon.restored, dashboardUrl: daemon.info().dashboardUrl });
  },
  (err) => {
    console.error("warren node failed to start:", err);
    process.send?.({ t: "failed", message: String(err?.message ?? err) });
    process.exit(1);
  },
);
