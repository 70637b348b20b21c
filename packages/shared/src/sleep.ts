// A synchronous sleep, for code that waits between non-blocking retries on the
// main thread (Node has no other way to block without spinning).
const cell = new Int32Array(new SharedArrayBuffer(4));

export function sleepSync(ms: number): void {
  Atomics.wait(cell, 0, 0, ms);
}
