// AssemblyScript kernels for examples/native.ts and test/integration/native.test.ts, compiled by
// `asc` into build/kernels.wasm. Typed arrays arrive as (pointer, length) at memory from alloc().

export function add(a: i32, b: i32): i32 {
  return a + b;
}

export function fib(n: i32): f64 {
  let a: f64 = 0, b: f64 = 1;
  for (let i = 0; i < n; i++) {
    const t = a + b;
    a = b;
    b = t;
  }
  return a;
}

export function dot(a: usize, n: i32, b: usize, m: i32): f64 {
  if (n != m) abort();
  let sum: f64 = 0;
  for (let i = 0; i < n; i++) sum += load<f64>(a + (<usize>i << 3)) * load<f64>(b + (<usize>i << 3));
  return sum;
}

export function alloc(bytes: i32): usize {
  return heap.alloc(<usize>bytes);
}
