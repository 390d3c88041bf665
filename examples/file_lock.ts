// Seed pattern "Inter-process synchronization using FileLock": three tasks append to one file,
// each holding the lock while it writes.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as warren from "warren";

// Consider using an absolute path for the lock (several processes share it).
const dir = path.join(os.tmpdir(), "warren-file-lock-example");
const dataFile = path.join(dir, "my_data.txt");

export const writeToFile = warren.remote(async function write_to_file(text: string) {
  await warren.withFileLock(`${dataFile}.lock`, () => fs.appendFileSync(dataFile, text));
});

async function main() {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  await warren.init();
  await warren.get(Array.from({ length: 3 }, () => writeToFile.remote("hi there!\n")));
  process.stdout.write(fs.readFileSync(dataFile, "utf8"));
  await warren.shutdown();
  fs.rmSync(dir, { recursive: true, force: true });
}

if (require.main === module) main();
