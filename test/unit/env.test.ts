// Settings read from the environment: a bad value is a clear error naming the variable, never NaN.
import { countFromEnv, secondsFromEnv } from "../../src/transport";

test("countFromEnv takes a whole number above 0, else says what is wrong", () => {
  expect(countFromEnv("WARREN_DEAD_ACTORS_KEPT", 100_000, {})).toBe(100_000);
  expect(countFromEnv("WARREN_DEAD_ACTORS_KEPT", 100_000, { WARREN_DEAD_ACTORS_KEPT: "500" })).toBe(500);
  for (const bad of ["lots", "0", "-3", "2.5"]) {
    expect(() => countFromEnv("WARREN_DEAD_ACTORS_KEPT", 100_000, { WARREN_DEAD_ACTORS_KEPT: bad })).toThrow(`WARREN_DEAD_ACTORS_KEPT must be a whole number above 0 (got "${bad}")`);
  }
});

test("the history's bounds read so too (head/server.ts HEAD_DEFAULTS)", () => {
  expect(countFromEnv("WARREN_TASKS_KEPT_PER_JOB", 10_000, { WARREN_TASKS_KEPT_PER_JOB: "25" })).toBe(25);
  expect(() => countFromEnv("WARREN_TASKS_KEPT_PER_JOB", 10_000, { WARREN_TASKS_KEPT_PER_JOB: "many" })).toThrow("unset it for the default, 10000");
});

test("secondsFromEnv reads seconds into milliseconds, else says what is wrong", () => {
  expect(secondsFromEnv("WARREN_HEAD_HUNG_S", 15_000, { WARREN_HEAD_HUNG_S: "1.5" })).toBe(1500);
  expect(() => secondsFromEnv("WARREN_HEAD_HUNG_S", 15_000, { WARREN_HEAD_HUNG_S: "soon" })).toThrow('WARREN_HEAD_HUNG_S must be a number of seconds above 0 (got "soon")');
});
