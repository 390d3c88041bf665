import * as path from "node:path";

/**
 * Where a compiled entry point (a process or thread warren starts) lives: under dist/ even when
 * the caller runs from src/ through a TypeScript loader (the tests do).
 */
export function compiled(file: string): string {
  const sep = path.sep;
  return __filename.endsWith(".ts") ? file.replace(`${sep}src${sep}`, `${sep}dist${sep}src${sep}`) : file;
}
