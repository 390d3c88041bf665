/**
 * A node's resources: what `init()` / `warren start` were told, else what this machine has.
 * GPUs come from `nvidia-smi`, each model also as `accelerator_type:<model>`.
 */
import * as os from "node:os";
import { execFileSync } from "node:child_process";
import type { Resources } from "../scheduling/shape";

export interface ResourceRequest {
  numCpus?: number;
  numGpus?: number;
  memory?: number;
  objectStoreMemory?: number;
  resources?: Resources;
}

export interface GpuInfo {
  index: number;
  name: string;
}

/** Detected NVIDIA GPUs; none where nvidia-smi is missing or fails. */
export function detectGpus(): GpuInfo[] {
  try {
    const out = execFileSync("nvidia-smi", ["--query-gpu=index,name", "--format=csv,noheader"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
      timeout: 5000,
    });
    return out.trim().split("\n").filter(Boolean).map((line) => {
      const [index, name] = line.split(",").map((s) => s.trim());
      return { index: Number(index), name };
    });
  } catch {
    return [];
  }
}

/** Ray's accelerator type for a GPU model name: "Tesla V100-SXM2-16GB" -> "V100", "NVIDIA H100 80GB HBM3" -> "H100". */
export function acceleratorType(gpuName: string): string {
  const words = gpuName.replace(/^NVIDIA\s+/i, "").replace(/^Tesla\s+/i, "").split(/[\s-]+/);
  return words[0] === "GeForce" || words[0] === "RTX" ? words.slice(0, 3).join("_") : words[0];
}

export function nodeIp(): string {
  for (const addrs of Object.values(os.networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  }
  return "127.0.0.1";
}

export function nodeResources(req: ResourceRequest, gpus: GpuInfo[] = req.numGpus === undefined ? detectGpus() : []): Resources {
  const memory = req.memory ?? Math.floor(os.totalmem() * 0.7);
  const r: Resources = {
    CPU: req.numCpus ?? os.availableParallelism(),
    memory,
    object_store_memory: req.objectStoreMemory ?? Math.floor(os.totalmem() * 0.3),
    [`node:${nodeIp()}`]: 1,
    ...req.resources,
  };
  const numGpus = req.numGpus ?? gpus.length;
  if (numGpus > 0) r.GPU = numGpus;
  for (const g of gpus) r[`accelerator_type:${acceleratorType(g.name)}`] = 1;
  return r;
}
