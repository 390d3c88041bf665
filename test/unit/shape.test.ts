import {
  EMPTY_SHAPE,
  actorDemand,
  add,
  fits,
  parseShape,
  roundAmount,
  shapeKey,
  subtract,
  taskDemand,
  type Resources,
} from "../../src/scheduling/shape";

describe("taskDemand", () => {
  test("CPU defaults to 1", () => {
    expect(taskDemand({})).toEqual({ CPU: 1 });
  });

  test("numCpus: 0 demands nothing", () => {
    expect(taskDemand({ numCpus: 0 })).toEqual({});
    expect(shapeKey(taskDemand({ numCpus: 0 }))).toBe("none");
  });

  test("GPU, memory, custom resources and the accelerator type", () => {
    expect(
      taskDemand({ numCpus: 2, numGpus: 0.5, memory: 1024, resources: { Custom1: 1 }, acceleratorType: "V100" }),
    ).toEqual({ CPU: 2, GPU: 0.5, memory: 1024, Custom1: 1, "accelerator_type:V100": 0.001 });
  });

  test("zero amounts are left out", () => {
    expect(taskDemand({ numGpus: 0, memory: 0, resources: { Custom1: 0 } })).toEqual({ CPU: 1 });
  });

  test("acceleratorType sets its marker to 0.001, like Ray", () => {
    expect(taskDemand({ numCpus: 0, acceleratorType: "A100", resources: { "accelerator_type:A100": 1 } })).toEqual({
      "accelerator_type:A100": 0.001,
    });
  });

  test("amounts are rounded to 4 decimal places", () => {
    expect(taskDemand({ numCpus: 0.123456 })).toEqual({ CPU: 0.1235 });
  });
});

describe("actorDemand", () => {
  test("numCpus unset: 1 CPU to place, 0 while alive", () => {
    expect(actorDemand({})).toEqual({ placement: { CPU: 1 }, held: {} });
  });

  test("numCpus set: both use it", () => {
    expect(actorDemand({ numCpus: 2 })).toEqual({ placement: { CPU: 2 }, held: { CPU: 2 } });
    expect(actorDemand({ numCpus: 0 })).toEqual({ placement: {}, held: {} });
  });

  test("other resources are held for the actor's life", () => {
    expect(actorDemand({ numGpus: 1, memory: 100, resources: { Custom1: 1 }, acceleratorType: "V100" })).toEqual({
      placement: { CPU: 1, GPU: 1, memory: 100, Custom1: 1, "accelerator_type:V100": 0.001 },
      held: { GPU: 1, memory: 100, Custom1: 1, "accelerator_type:V100": 0.001 },
    });
    expect(actorDemand({ numCpus: 0.5, numGpus: 0.25 })).toEqual({
      placement: { CPU: 0.5, GPU: 0.25 },
      held: { CPU: 0.5, GPU: 0.25 },
    });
  });
});

describe("shapeKey", () => {
  test("sorted by name in code-unit order, amounts trimmed", () => {
    expect(shapeKey({ "accelerator_type:V100": 0.001, GPU: 1, CPU: 1 })).toBe("CPU:1,GPU:1,accelerator_type:V100:0.001");
    expect(shapeKey({ b: 0.5, a: 2, B: 1.25 })).toBe("B:1.25,a:2,b:0.5");
  });

  test("the same demand gives the same key in any key order", () => {
    expect(shapeKey({ GPU: 1, CPU: 1, Custom1: 2 })).toBe(shapeKey({ Custom1: 2, CPU: 1, GPU: 1 }));
  });

  test("empty and all-zero demands are 'none'", () => {
    expect(EMPTY_SHAPE).toBe("none");
    expect(shapeKey({})).toBe("none");
    expect(shapeKey({ CPU: 0, GPU: 0 })).toBe("none");
    expect(shapeKey({ CPU: 0, GPU: 1 })).toBe("GPU:1");
  });

  test("at most 4 decimals, no trailing zeros, no exponent", () => {
    expect(shapeKey({ CPU: 0.1 + 0.2 })).toBe("CPU:0.3");
    expect(shapeKey({ CPU: 1.23456 })).toBe("CPU:1.2346");
    expect(shapeKey({ CPU: 0.0001 })).toBe("CPU:0.0001");
    expect(shapeKey({ CPU: 1.5 })).toBe("CPU:1.5");
    expect(shapeKey({ CPU: 10 })).toBe("CPU:10");
    expect(shapeKey({ memory: 1e21 })).toBe("memory:1000000000000000000000");
    expect(shapeKey({ memory: 2 ** 40 })).toBe("memory:1099511627776");
  });

  test("non-finite amounts are refused", () => {
    expect(() => shapeKey({ CPU: NaN })).toThrow(RangeError);
    expect(() => shapeKey({ CPU: Infinity })).toThrow(RangeError);
  });
});

describe("parseShape", () => {
  const demands: Resources[] = [
    {},
    { CPU: 1 },
    { CPU: 1, GPU: 1, "accelerator_type:V100": 0.001 },
    { "node:10.0.0.1": 0.01, CPU: 0.5 },
    { memory: 2 ** 36, Custom1: 3.1416, "a:b:c": 2 },
    { CPU: 0.0001 },
  ];

  test.each(demands.map((d) => [d]))("round-trips %p", (demand) => {
    const key = shapeKey(demand);
    expect(parseShape(key)).toEqual(demand);
    expect(shapeKey(parseShape(key))).toBe(key);
  });

  test("splits on the last ':'", () => {
    expect(parseShape("accelerator_type:V100:0.001,node:10.0.0.1:1")).toEqual({
      "accelerator_type:V100": 0.001,
      "node:10.0.0.1": 1,
    });
  });

  test("'none' is the empty demand", () => {
    expect(parseShape("none")).toEqual({});
  });

  test.each(["", "CPU", "CPU:", ":1", "CPU:x", "CPU:1,CPU:2", "CPU:1e3", "CPU:0.00001", "CPU:1,"])("rejects %p", (key) => {
    expect(() => parseShape(key)).toThrow(/invalid shape key/);
  });
});

describe("fits, subtract and add", () => {
  test("ten 0.1 demands fit exactly into 1 and an eleventh does not", () => {
    let available: Resources = { CPU: 1 };
    for (let i = 0; i < 10; i++) {
      expect(fits({ CPU: 0.1 }, available)).toBe(true);
      available = subtract(available, { CPU: 0.1 });
    }
    expect(available).toEqual({ CPU: 0 });
    expect(Object.is(available.CPU, 0)).toBe(true);
    expect(fits({ CPU: 0.1 }, available)).toBe(false);
    expect(fits({ CPU: 0.0001 }, available)).toBe(false);
    // and giving them back restores exactly 1
    for (let i = 0; i < 10; i++) available = add(available, { CPU: 0.1 });
    expect(available).toEqual({ CPU: 1 });
  });

  test("no float drift: 0.1 + 0.2 fits into 0.3", () => {
    const sum = add({ CPU: 0.1 }, { CPU: 0.2 });
    expect(sum.CPU).toBe(0.3);
    expect(fits({ CPU: 0.3 }, { CPU: 0.1 + 0.2 })).toBe(true);
    expect(fits({ CPU: 0.1 + 0.2 }, { CPU: 0.3 })).toBe(true);
    expect(subtract({ CPU: 0.3 }, { CPU: 0.1 + 0.2 })).toEqual({ CPU: 0 });
    expect(subtract({ CPU: 0.7 }, { CPU: 0.1 }).CPU).toBe(0.6);
  });

  test("three 1/3 GPUs fit in one GPU at 4-decimal granularity", () => {
    let available: Resources = { GPU: 1 };
    for (let i = 0; i < 3; i++) {
      expect(fits({ GPU: 0.3333 }, available)).toBe(true);
      available = subtract(available, { GPU: 0.3333 });
    }
    expect(available).toEqual({ GPU: 0.0001 });
    expect(fits({ GPU: 0.3333 }, available)).toBe(false);
  });

  test("a missing resource counts as 0", () => {
    expect(fits({ GPU: 1 }, { CPU: 8 })).toBe(false);
    expect(fits({ GPU: 0 }, { CPU: 8 })).toBe(true);
    expect(fits({}, {})).toBe(true);
    expect(fits({ constructor: 1 }, {})).toBe(false);
    expect(fits({ toString: 1 }, { CPU: 1 })).toBe(false);
  });

  test("fits needs every resource", () => {
    const node = { CPU: 4, GPU: 1, "accelerator_type:V100": 1, Custom1: 2 };
    expect(fits({ CPU: 1, GPU: 1, "accelerator_type:V100": 0.001 }, node)).toBe(true);
    expect(fits({ CPU: 5 }, node)).toBe(false);
    expect(fits({ CPU: 1, Custom1: 2.0001 }, node)).toBe(false);
    expect(fits({ CPU: 1, "accelerator_type:A100": 0.001 }, node)).toBe(false);
  });

  test("subtract and add are pure and keep other keys", () => {
    const node = Object.freeze({ CPU: 4, GPU: 2, memory: 2 ** 34 });
    const after = subtract(node, { CPU: 1.5, GPU: 2 });
    expect(after).toEqual({ CPU: 2.5, GPU: 0, memory: 2 ** 34 });
    expect(node).toEqual({ CPU: 4, GPU: 2, memory: 2 ** 34 });
    expect(add(after, { CPU: 1.5, GPU: 2 })).toEqual(node);
    expect(add({ CPU: 1 }, { Custom1: 2 })).toEqual({ CPU: 1, Custom1: 2 });
    expect(add({ CPU: 1 }, { Custom1: 0 })).toEqual({ CPU: 1 });
  });

  test("subtract may go negative (re-acquiring after a nested get)", () => {
    expect(subtract({ CPU: 0 }, { CPU: 1 })).toEqual({ CPU: -1 });
    expect(subtract({}, { CPU: 0.5 })).toEqual({ CPU: -0.5 });
  });

  test("large byte counts stay exact", () => {
    const big = 2 ** 53 + 2; // beyond what units of 1e-4 hold in a double
    expect(subtract({ memory: big }, { memory: 2 })).toEqual({ memory: 2 ** 53 });
    expect(fits({ memory: big }, { memory: big })).toBe(true);
    expect(fits({ memory: big + 2 }, { memory: big })).toBe(false);
    expect(add({ memory: 2 ** 41 }, { memory: 0.5 })).toEqual({ memory: 2 ** 41 + 0.5 });
  });

  test("results keep odd names as own data", () => {
    const out = add({}, JSON.parse('{"__proto__": 1}'));
    expect(Object.keys(out)).toEqual(["__proto__"]);
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
  });
});

describe("roundAmount", () => {
  test.each([
    [0.30000000000000004, 0.3],
    [1.23456, 1.2346],
    [0.00004, 0],
    [0.00005, 0.0001],
    [0.99995, 1],
    [-0.5, -0.5],
    [-0, 0],
    [1e12 + 0.5, 1e12 + 0.5],
    [7831584487286190, 7831584487286190], // units beyond 2^53: no double rounding
    [555794240258231.9, 555794240258231.9],
  ])("%p -> %p", (x, expected) => {
    expect(Object.is(roundAmount(x), expected)).toBe(true);
  });
});
