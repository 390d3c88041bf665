/**
 * wire: the state API's row filters (Ray's `[["state", "=", "RUNNING"]]`), applied where the rows
 * are: by the querying process to what it gathered, and by the head to its task history, so a
 * filtered or short list of tasks does not carry the whole history over the broker.
 */
export type Predicate = "=" | "!=";
export type Filter = [string, Predicate, unknown];

/** Whether a row passes every filter; values compare as strings, as the CLI writes them. */
export function matches(row: object, filters: Filter[]): boolean {
  return filters.every(([k, op, v]) => (String((row as Record<string, unknown>)[k]) === String(v)) === (op === "="));
}
