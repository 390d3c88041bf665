// A module using two granted imports: env.log (printed with the task's prefix) and Math.sqrt.
@external("env", "log")
declare function log(value: f64): void;

@external("Math", "sqrt")
declare function sqrt(x: f64): f64;

export function hypot(a: f64, b: f64): f64 {
  const h = sqrt(a * a + b * b);
  log(h);
  return h;
}
