// The log files' format and rotation (core/log-files.ts), on real files.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { markerLine, parseMarker, rotate, rotationFromEnv, withBackups } from "../../src/core/log-files";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "warren-log-files-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

test("rotation keeps the newest copies as .1 to .N and empties the file", () => {
  const file = path.join(dir, "w.out");
  for (const text of ["one\n", "two\n", "three\n"]) {
    fs.writeFileSync(file, text);
    rotate(file, 2);
  }
  expect(fs.readFileSync(file, "utf8")).toBe("");
  expect(fs.readFileSync(`${file}.1`, "utf8")).toBe("three\n");
  expect(fs.readFileSync(`${file}.2`, "utf8")).toBe("two\n");
  expect(fs.existsSync(`${file}.3`)).toBe(false);
  expect(withBackups(file, 2)).toEqual([`${file}.2`, `${file}.1`, file]);
});

test("limits come from the environment, checked", () => {
  expect(rotationFromEnv({})).toEqual({ maxBytes: 16 * 1024 * 1024, backups: 5 });
  expect(rotationFromEnv({ WARREN_LOG_MAX_BYTES: "4096", WARREN_LOG_BACKUPS: "0" })).toEqual({ maxBytes: 4096, backups: 0 });
  expect(() => rotationFromEnv({ WARREN_LOG_MAX_BYTES: "100" })).toThrow(/WARREN_LOG_MAX_BYTES must be a whole number of at least 1024 \(got "100"\); unset it for the default, 16777216/);
  expect(() => rotationFromEnv({ WARREN_LOG_BACKUPS: "-1" })).toThrow(/WARREN_LOG_BACKUPS must be a whole number of at least 0/);
});

test("a marker line reads back as its source; other lines are not markers", () => {
  const source = { stream: "stderr" as const, name: "f", job: "j", task: "t" };
  expect(markerLine(source).endsWith("\n")).toBe(true);
  expect(parseMarker(markerLine(source).trimEnd())).toEqual(source);
  expect(parseMarker("hello")).toBeUndefined();
  expect(parseMarker(":warren:{not json")).toBeUndefined();
});
