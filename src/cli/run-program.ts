/**
 * `warren run app.ts [args...]`: runs a program with nothing installed beyond warren. TypeScript
 * goes through the tsx that warren depends on (`npx tsx` finds it only where tsx is a direct
 * dependency of the project), JavaScript through node; the exit code is the program's.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import { UsageError } from "./common";

export function runProgram(file: string, args: string[]): Promise<number> {
  if (!fs.existsSync(file) || !fs.statSync(file).isFile()) throw new UsageError(`no such program file: ${file}`);
  const child = spawn(process.execPath, [require.resolve("tsx/cli"), file, ...args], { stdio: "inherit" });
  // Ctrl-C reaches the program through the terminal's process group; a kill of this process is passed on.
  const pass = (signal: NodeJS.Signals) => child.kill(signal);
  process.on("SIGTERM", pass);
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      process.off("SIGTERM", pass);
      resolve(code ?? 128 + (signal ? os.constants.signals[signal] : 0));
    });
  });
}
