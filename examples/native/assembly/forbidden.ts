// A module that imports something outside warren's allow-list: warren.wasm() must refuse it.
@external("env", "readFile")
declare function readFile(path: i32): i32;

export function leak(): i32 {
  return readFile(0);
}
