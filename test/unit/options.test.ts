import { OptionsError, WarrenError } from "../../src/errors";
import {
  mergeOptions,
  validateActorOptions,
  validateInitOptions,
  validateMethodOptions,
  validateTaskOptions,
} from "../../src/options";

/** The OptionsError thrown by fn (fails the test if it returns). */
function optionsError(fn: () => unknown): OptionsError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(OptionsError);
    expect(e).toBeInstanceOf(WarrenError);
    return e as OptionsError;
  }
  throw new Error("expected an OptionsError");
}

const fieldsOf = (e: OptionsError) => e.problems.map((p) => p.field);

type Validate = (input: unknown) => unknown;
const task: Validate = (i) => validateTaskOptions(i);
const actor: Validate = (i) => validateActorOptions(i);
const method: Validate = (i) => validateMethodOptions(i);
const init: Validate = (i) => validateInitOptions(i);

class NotPlain {
  numCpus = 1;
}

const amountGood = [0, 1, 0.5, 2.25, 1e12];
const amountBad = [-1, -0.5, NaN, Infinity, "1", null, true, {}, [1]];
const int0Good = [0, 1, 7];
const int0Bad = [-1, 1.5, NaN, "2", null, Infinity];
const intM1Good = [-1, 0, 3];
const intM1Bad = [-2, 0.5, "1", null, -Infinity];
const boolGood = [true, false];
const boolBad = [0, 1, "true", null, {}];
const strGood = ["a", "special_f", "x y"];
const strBad = ["", 1, null, {}, ["a"]];

// [validator, field, accepted, rejected, text the problem must contain]
const table: [string, string, Validate, unknown[], unknown[], string][] = [
  ["task", "name", task, strGood, strBad, "must be a non-empty string"],
  ["task", "numCpus", task, amountGood, amountBad, "must be a number >= 0"],
  ["task", "numGpus", task, [...amountGood, 0.25], amountBad, "must be a number >= 0"],
  ["task", "memory", task, amountGood, amountBad, "must be a number >= 0"],
  ["task", "acceleratorType", task, ["V100", "A100-80G"], ["", 3, null, "V 100", "a,b"], "must"],
  ["task", "numReturns", task, int0Good, int0Bad, "must be an integer >= 0"],
  ["task", "maxRetries", task, intM1Good, intM1Bad, "must be an integer >= -1"],
  ["task", "retryExceptions", task, boolGood, boolBad, "must be a boolean"],
  ["actor", "numCpus", actor, amountGood, amountBad, "must be a number >= 0"],
  ["actor", "numGpus", actor, amountGood, amountBad, "must be a number >= 0"],
  ["actor", "memory", actor, amountGood, amountBad, "must be a number >= 0"],
  ["actor", "acceleratorType", actor, ["V100"], ["", 1, "a b"], "must"],
  ["actor", "name", actor, strGood, strBad, "must be a non-empty string"],
  ["actor", "namespace", actor, strGood, strBad, "must be a non-empty string"],
  ["actor", "lifetime", actor, ["detached", "non_detached"], ["Detached", "", 1, null], `must be "detached" or "non_detached"`],
  ["actor", "maxRestarts", actor, intM1Good, intM1Bad, "must be an integer >= -1"],
  ["actor", "maxTaskRetries", actor, intM1Good, intM1Bad, "must be an integer >= -1"],
  ["actor", "maxConcurrency", actor, [1, 1000], [0, -1, 1.5, "4", null], "must be an integer >= 1"],
  ["method", "numReturns", method, int0Good, int0Bad, "must be an integer >= 0"],
  ["method", "concurrencyGroup", method, strGood, strBad, "must be a non-empty string"],
  ["method", "name", method, strGood, strBad, "must be a non-empty string"],
  ["init", "address", init,
    ["amqp://guest:guest@127.0.0.1:5672", "amqps://h/vhost", "amqp://", ["amqp://a:5672", "amqp://b:5672"], "amqp://a:5672,amqp://b:5672"],
    ["http://h", "", "127.0.0.1:5672", 5672, null, [], ["amqp://a", "http://b"], ["amqp://a,amqp://b"], "amqp://a,http://b:1,amqp://c"],
    "must be an amqp:// or amqps:// URL, a comma-separated list of them, or an array of them"],
  ["init", "cluster", init, ["prod", "a-b_c.1", "X"], ["", "a b", "a/b", "a,b", 1, null], "must be a non-empty string of letters, digits"],
  ["init", "numCpus", init, amountGood, amountBad, "must be a number >= 0"],
  ["init", "numGpus", init, amountGood, amountBad, "must be a number >= 0"],
  ["init", "memory", init, amountGood, amountBad, "must be a number >= 0"],
  ["init", "namespace", init, strGood, strBad, "must be a non-empty string"],
  ["init", "logToDriver", init, boolGood, boolBad, "must be a boolean"],
  ["init", "objectStoreMemory", init, [1, 1e9, 0.5], [0, -1, NaN, Infinity, "1", null], "must be a number > 0"],
];

describe.each(table)("%s option %s", (_kind, field, validate, good, bad, text) => {
  test.each(good.map((v) => [v]))("accepts %p", (value) => {
    const out = validate({ [field]: value }) as Record<string, unknown>;
    expect(out[field]).toEqual(value);
    expect(Object.keys(out)).toEqual([field]);
  });
  test.each(bad.map((v) => [v]))("rejects %p", (value) => {
    const e = optionsError(() => validate({ [field]: value }));
    expect(e.problems).toHaveLength(1);
    expect(e.problems[0].field).toBe(field);
    expect(e.problems[0].problem).toContain(text);
    expect(e.problems[0].problem).toContain("(got ");
    expect(e.message).toContain(`${field}: `);
  });
  test("undefined means not given", () => {
    expect(validate({ [field]: undefined })).toEqual({});
  });
});

describe("messages", () => {
  test("say what is allowed and what arrived", () => {
    const e = optionsError(() => validateTaskOptions({ numCpus: -1 }));
    expect(e.message).toBe("invalid task options: numCpus: must be a number >= 0 (got -1)");
    expect(e.where).toBe("task options");
  });

  test("`where` names the call site", () => {
    expect(optionsError(() => validateTaskOptions({ numCpus: -1 }, "options of f")).message).toMatch(/^invalid options of f: /);
    expect(optionsError(() => validateActorOptions({ name: "" })).where).toBe("actor options");
    expect(optionsError(() => validateMethodOptions({ name: "" })).where).toBe("actor method options");
    expect(optionsError(() => validateInitOptions({ cluster: "" })).where).toMatch(/init/);
  });

  test("one error lists every bad field, in the order given", () => {
    const e = optionsError(() =>
      validateTaskOptions({
        name: "",
        numCpus: -1,
        numGpus: "1",
        numReturns: 1.5,
        maxRetries: -2,
        retryExceptions: "yes",
        bogus: 1,
        resources: { CPU: 1, ok: 1, bad: -1 },
      }),
    );
    expect(fieldsOf(e)).toEqual([
      "name",
      "numCpus",
      "numGpus",
      "numReturns",
      "maxRetries",
      "retryExceptions",
      "bogus",
      "resources.CPU",
      "resources.bad",
    ]);
    for (const f of fieldsOf(e)) expect(e.message).toContain(`${f}: `);
    expect(e.problems.find((p) => p.field === "numGpus")!.problem).toBe(`must be a number >= 0 (got "1")`);
    expect(e.problems.find((p) => p.field === "retryExceptions")!.problem).toBe(`must be a boolean (got "yes")`);
  });

  test("one problem per field even when several checks fail", () => {
    const e = optionsError(() => validateTaskOptions({ numReturns: "x", numCpus: NaN }));
    expect(fieldsOf(e)).toEqual(["numReturns", "numCpus"]);
  });

  test("broker passwords are redacted", () => {
    const e = optionsError(() => validateInitOptions({ address: "http://user:hunter2@host" }));
    expect(e.message).not.toContain("hunter2");
    expect(e.message).toContain("user:***@host");
  });

  test("every broker password of a list is redacted, in an array or a comma-separated string", () => {
    for (const address of [["amqp://a:first@h1", "http://b:second@h2", "amqp://c:third@h3"], "amqp://a:first@h1,amqp://b:second@h2,http://x"]) {
      const e = optionsError(() => validateInitOptions({ address }));
      for (const secret of ["first", "second", "third"]) expect(e.message).not.toContain(secret);
      expect(e.message).toContain("a:***@h1");
      expect(e.message).toContain("b:***@h2");
    }
  });
});

describe("unknown keys", () => {
  test("are errors listing the allowed names", () => {
    const e = optionsError(() => validateTaskOptions({ foo: 1 }));
    expect(e.problems).toHaveLength(1);
    expect(e.problems[0].field).toBe("foo");
    expect(e.problems[0].problem).toMatch(/^unknown option; allowed: /);
    for (const name of ["name", "numCpus", "numGpus", "memory", "resources", "acceleratorType", "numReturns", "maxRetries", "retryExceptions"]) {
      expect(e.problems[0].problem).toContain(name);
    }
  });

  test("an option of another kind is unknown here", () => {
    expect(fieldsOf(optionsError(() => validateTaskOptions({ maxConcurrency: 2 })))).toEqual(["maxConcurrency"]);
    expect(fieldsOf(optionsError(() => validateActorOptions({ numReturns: 2 })))).toEqual(["numReturns"]);
    expect(fieldsOf(optionsError(() => validateMethodOptions({ numCpus: 1 })))).toEqual(["numCpus"]);
    expect(fieldsOf(optionsError(() => validateInitOptions({ maxRetries: 1 })))).toEqual(["maxRetries"]);
    expect(fieldsOf(optionsError(() => validateInitOptions({ acceleratorType: "V100" })))).toEqual(["acceleratorType"]);
  });

  test("Ray spellings get a suggestion", () => {
    const e = optionsError(() => validateTaskOptions({ num_cpus: 1, max_retries: 2 }));
    expect(e.problems[0].problem).toContain("did you mean numCpus?");
    expect(e.problems[1].problem).toContain("did you mean maxRetries?");
  });

  test("names found on Object.prototype are unknown too", () => {
    const input = JSON.parse('{"__proto__": {"numCpus": 1}, "constructor": 1, "toString": 2, "hasOwnProperty": 3, "__defineGetter__": 4}');
    const e = optionsError(() => validateTaskOptions(input));
    expect(fieldsOf(e).sort()).toEqual(["__defineGetter__", "__proto__", "constructor", "hasOwnProperty", "toString"].sort());
  });

  test("are listed along with bad values", () => {
    const e = optionsError(() => validateActorOptions({ a: 1, maxRestarts: -5, b: 2 }));
    expect(fieldsOf(e)).toEqual(["a", "maxRestarts", "b"]);
  });
});

describe("input that is not a plain object", () => {
  test.each([
    ["null", null],
    ["a string", "numCpus=1"],
    ["a number", 3],
    ["an array", [{ numCpus: 1 }]],
    ["a class instance", new NotPlain()],
    ["a Map", new Map([["numCpus", 1]])],
    ["a Date", new Date(0)],
    ["a function", () => 1],
  ])("rejects %s", (_label, input) => {
    for (const validate of [task, actor, method, init]) {
      const e = optionsError(() => validate(input));
      expect(e.problems).toHaveLength(1);
      expect(e.problems[0].field).toBe("options");
      expect(e.problems[0].problem).toContain("must be a plain object");
    }
  });

  test("undefined is no options", () => {
    expect(validateTaskOptions(undefined)).toEqual({});
    expect(validateInitOptions(undefined)).toEqual({});
  });

  test("a null-prototype object is accepted", () => {
    const input = Object.assign(Object.create(null), { numCpus: 2 });
    expect(validateTaskOptions(input)).toEqual({ numCpus: 2 });
  });
});

describe("resources", () => {
  test("custom resources are accepted and copied", () => {
    const input = { resources: { Custom1: 1, "node:10.0.0.1": 0.01, "accelerator_type:V100": 0.001, zero: 0 } };
    const out = validateTaskOptions(input);
    expect(out.resources).toEqual(input.resources);
    expect(out.resources).not.toBe(input.resources);
    input.resources.Custom1 = 5;
    expect(out.resources!.Custom1).toBe(1);
  });

  test.each(["CPU", "GPU", "memory", "object_store_memory"])("%s is reserved", (name) => {
    for (const validate of [task, actor, init]) {
      const e = optionsError(() => validate({ resources: { [name]: 1 } }));
      expect(fieldsOf(e)).toEqual([`resources.${name}`]);
      expect(e.problems[0].problem).toMatch(/use the (numCpus|numGpus|memory) option/);
    }
  });

  test("reserved names point at the right option", () => {
    const e = optionsError(() => validateTaskOptions({ resources: { CPU: 1, GPU: 1, memory: 1 } }));
    expect(e.problems.map((p) => p.problem.match(/use the (\w+) option/)![1])).toEqual(["numCpus", "numGpus", "memory"]);
  });

  test.each([
    ["empty name", "", `resources[""]`, "non-empty"],
    ["comma", "a,b", `resources["a,b"]`, "','"],
    ["space", "a b", `resources["a b"]`, "whitespace"],
    ["tab", "a\tb", `resources["a\\tb"]`, "whitespace"],
  ])("rejects a name with %s", (_label, name, field, text) => {
    const e = optionsError(() => validateTaskOptions({ resources: { [name]: 1 } }));
    expect(fieldsOf(e)).toEqual([field]);
    expect(e.problems[0].problem).toContain(text);
  });

  test.each([[-1], [NaN], [Infinity], ["1"], [null], [{}]])("rejects amount %p", (amount) => {
    const e = optionsError(() => validateTaskOptions({ resources: { Custom1: amount } }));
    expect(e.problems).toEqual([{ field: "resources.Custom1", problem: expect.stringContaining("must be a number >= 0 (got ") }]);
  });

  test.each([[null], ["Custom1"], [[1]], [new Map([["Custom1", 1]])], [3], [new NotPlain()]])("rejects resources %p", (value) => {
    const e = optionsError(() => validateTaskOptions({ resources: value }));
    expect(fieldsOf(e)).toEqual(["resources"]);
    expect(e.problems[0].problem).toContain("must be a plain object of resource name -> amount");
  });

  test("every bad entry is its own problem", () => {
    const e = optionsError(() => validateActorOptions({ resources: { CPU: 1, good: 2, "": 1, neg: -1, tiny: 0.00001 }, numCpus: -1 }));
    expect(fieldsOf(e)).toEqual(["resources.CPU", `resources[""]`, "resources.neg", "resources.tiny", "numCpus"]);
  });

  test("an own __proto__ resource stays data", () => {
    const out = validateTaskOptions(JSON.parse('{"resources": {"__proto__": 1}}'));
    expect(Object.keys(out.resources!)).toEqual(["__proto__"]);
    expect(Object.getPrototypeOf(out.resources)).toBe(Object.prototype);
  });
});

describe("rounding to 4 decimal places", () => {
  test("amounts are rounded like Ray", () => {
    const out = validateTaskOptions({
      numCpus: 0.30000000000000004,
      numGpus: 0.33333333,
      memory: 1.23456,
      resources: { a: 0.123456, b: 2.00004, c: 0.99995 },
    });
    expect(out).toEqual({ numCpus: 0.3, numGpus: 0.3333, memory: 1.2346, resources: { a: 0.1235, b: 2, c: 1 } });
  });

  test("a positive amount that rounds to 0 is an error", () => {
    for (const field of ["numCpus", "numGpus", "memory"]) {
      const e = optionsError(() => validateTaskOptions({ [field]: 0.00004 }));
      expect(e.problems).toEqual([{ field, problem: expect.stringContaining("4 decimal places") }]);
    }
    const e = optionsError(() => validateTaskOptions({ resources: { Custom1: 0.00001 } }));
    expect(e.problems).toEqual([{ field: "resources.Custom1", problem: expect.stringContaining("at least 0.0001") }]);
  });

  test("the smallest amounts survive", () => {
    expect(validateTaskOptions({ numGpus: 0.0001, resources: { x: 0.00005 } })).toEqual({ numGpus: 0.0001, resources: { x: 0.0001 } });
  });

  test("-0 becomes 0", () => {
    expect(Object.is(validateTaskOptions({ numCpus: -0 }).numCpus, 0)).toBe(true);
  });
});

describe("results", () => {
  test("are frozen plain objects with only the given keys", () => {
    const out = validateTaskOptions({ numCpus: 1, resources: { a: 1 }, name: "f", maxRetries: undefined });
    expect(out).toEqual({ numCpus: 1, resources: { a: 1 }, name: "f" });
    expect(Object.keys(out)).toEqual(["numCpus", "resources", "name"]);
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect(Object.isFrozen(out)).toBe(true);
    expect(Object.isFrozen(out.resources)).toBe(true);
    expect(() => {
      (out as { numCpus: number }).numCpus = 2;
    }).toThrow(TypeError);
  });

  test("every option at once", () => {
    const actorOpts = {
      numCpus: 0,
      numGpus: 1,
      memory: 1024,
      resources: { Custom1: 1 },
      acceleratorType: "V100",
      name: "c2",
      namespace: "ns",
      lifetime: "detached",
      getIfExists: true,
      maxRestarts: -1,
      maxTaskRetries: 2,
      maxConcurrency: 1000,
    };
    expect(validateActorOptions(actorOpts)).toEqual(actorOpts);
    const initOpts = {
      address: "amqp://guest:guest@127.0.0.1:5672",
      cluster: "prod",
      numCpus: 4,
      numGpus: 0,
      memory: 2 ** 33,
      resources: { Custom1: 2 },
      namespace: "ns",
      logToDriver: false,
      objectStoreMemory: 2 ** 30,
    };
    expect(validateInitOptions(initOpts)).toEqual(initOpts);
    expect(validateMethodOptions({ numReturns: 2, concurrencyGroup: "io", name: "m" })).toEqual({ numReturns: 2, concurrencyGroup: "io", name: "m" });
  });

  test("getIfExists needs a name", () => {
    const e = optionsError(() => validateActorOptions({ getIfExists: true }));
    expect(e.problems).toEqual([{ field: "getIfExists", problem: expect.stringContaining("requires name") }]);
    expect(validateActorOptions({ getIfExists: false })).toEqual({ getIfExists: false });
    expect(validateActorOptions({ getIfExists: true, name: "a" })).toEqual({ getIfExists: true, name: "a" });
  });
});

describe("mergeOptions", () => {
  test("override wins per key", () => {
    const base = validateTaskOptions({ numCpus: 1, numGpus: 1, name: "f" });
    const out = mergeOptions(base, validateTaskOptions({ numCpus: 2, maxRetries: 3 }));
    expect(out).toEqual({ numCpus: 2, numGpus: 1, name: "f", maxRetries: 3 });
    expect(Object.isFrozen(out)).toBe(true);
    expect(base).toEqual({ numCpus: 1, numGpus: 1, name: "f" });
  });

  test("resources are replaced whole, like Ray", () => {
    const out = mergeOptions<ReturnType<typeof validateTaskOptions>>({ resources: { a: 1, b: 2 } }, { resources: { b: 5 } });
    expect(out.resources).toEqual({ b: 5 });
  });

  test("undefined in the override keeps the base value; zero and false override", () => {
    expect(mergeOptions<Record<string, unknown>>({ numCpus: 1, retryExceptions: true }, { numCpus: undefined, retryExceptions: false })).toEqual({
      numCpus: 1,
      retryExceptions: false,
    });
    expect(mergeOptions({ numCpus: 1 }, { numCpus: 0 })).toEqual({ numCpus: 0 });
  });

  test("either side may be missing", () => {
    expect(mergeOptions(undefined, { numCpus: 1 })).toEqual({ numCpus: 1 });
    expect(mergeOptions({ numCpus: 1 }, undefined)).toEqual({ numCpus: 1 });
    expect(mergeOptions<object>(undefined, undefined)).toEqual({});
  });
});
