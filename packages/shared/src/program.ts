// A program for the native stub (see stub/x86_64.S): a list of raw syscalls with
// their arguments, laid out as one memory image that the stub walks. Pure: the
// image is built with offsets and linked to the address where it is mapped.
import { SYSCALLS, type Arch, type SyscallName } from './syscalls.ts';

/** A syscall argument: an integer, a NUL-terminated string, raw bytes, a
 *  NULL-terminated array of strings (argv, envp), the result of the last step
 *  that saved one, or a slot: a buffer (and its length) whose content is only
 *  known after the child was created and is filled in before it is released. */
export type Arg =
  | number
  | bigint
  | { str: string }
  | { bytes: Uint8Array }
  | { strings: string[] }
  | { slot: string; capacity: number }
  | { slotLength: string }
  | 'saved';

export interface Step {
  /** What the step does, for error messages: "mount proc on /proc". */
  what: string;
  call: SyscallName;
  args: Arg[];
  /** A failure is reported and the program goes on. */
  soft?: boolean;
  /** Keep the result for later 'saved' arguments. */
  save?: boolean;
  /** Any other result counts as a failure with errno 0. */
  expect?: number;
}

export interface Slot {
  /** Where the buffer starts in the image. */
  offset: number;
  capacity: number;
  /** Offsets of the 64-bit argument fields that receive the content's length. */
  lengthFields: number[];
}

export interface Image {
  bytes: Uint8Array;
  /** Offsets of 64-bit fields that hold image offsets and need the base added. */
  relocations: number[];
  slots: Map<string, Slot>;
}

const HEADER = 64;
const STEP = 64;
const FLAG_SOFT = 1;
const FLAG_SAVE = 2;
const FLAG_EXPECT = 4;
const FLAG_SAVED_ARG = [8, 16, 32];
export const RECORD_SIZE = 8;

export function assemble(steps: Step[], errorFd: number, arch: Arch): Image {
  const data: Uint8Array[] = [];
  const relocations: number[] = [];
  let dataEnd = HEADER + STEP * steps.length;
  // Pointer arrays are filled in after the strings they point at are placed.
  const pointerArrays: { at: number; targets: number[] }[] = [];

  const place = (chunk: Uint8Array): number => {
    const at = dataEnd;
    data.push(chunk);
    const padded = (chunk.length + 7) & ~7;
    if (padded > chunk.length) data.push(new Uint8Array(padded - chunk.length));
    dataEnd += padded;
    return at;
  };
  const placeString = (s: string): number => place(Buffer.from(`${s}\0`, 'utf8'));
  const slots = new Map<string, Slot>();
  const slot = (name: string): Slot => {
    let found = slots.get(name);
    if (!found) slots.set(name, (found = { offset: -1, capacity: 0, lengthFields: [] }));
    return found;
  };

  const header = Buffer.alloc(HEADER + STEP * steps.length);
  header.writeBigUInt64LE(BigInt(HEADER), 0);
  relocations.push(0);
  header.writeBigUInt64LE(BigInt(steps.length), 8);
  header.writeInt32LE(errorFd, 16);

  steps.forEach((step, i) => {
    if (step.args.length > 6) throw new Error(`step "${step.what}" has more than 6 arguments`);
    const at = HEADER + STEP * i;
    header.writeBigUInt64LE(BigInt(SYSCALLS[step.call][arch]), at);
    let flags = (step.soft ? FLAG_SOFT : 0) | (step.save ? FLAG_SAVE : 0);
    step.args.forEach((arg, j) => {
      const field = at + 8 + 8 * j;
      if (arg === 'saved') {
        const flag = FLAG_SAVED_ARG[j];
        if (flag === undefined) throw new Error(`step "${step.what}": only arguments 0-2 can be the saved result`);
        flags |= flag;
      } else if (typeof arg === 'number' || typeof arg === 'bigint') {
        header.writeBigInt64LE(BigInt.asIntN(64, BigInt(arg)), field);
      } else if ('slotLength' in arg) {
        slot(arg.slotLength).lengthFields.push(field);
      } else if ('slot' in arg) {
        const s = slot(arg.slot);
        if (s.offset < 0) {
          s.offset = place(new Uint8Array(arg.capacity));
          s.capacity = arg.capacity;
        }
        header.writeBigUInt64LE(BigInt(s.offset), field);
        relocations.push(field);
      } else {
        let offset: number;
        if ('str' in arg) offset = placeString(arg.str);
        else if ('bytes' in arg) offset = place(arg.bytes);
        else {
          const targets = arg.strings.map(placeString);
          offset = place(new Uint8Array(8 * (targets.length + 1)));
          pointerArrays.push({ at: offset, targets });
        }
        header.writeBigUInt64LE(BigInt(offset), field);
        relocations.push(field);
      }
    });
    if (step.expect !== undefined) {
      flags |= FLAG_EXPECT;
      header.writeInt32LE(step.expect, at + 60);
    }
    header.writeUInt32LE(flags, at + 56);
  });

  const bytes = Buffer.concat([header, ...data]);
  for (const { at, targets } of pointerArrays) {
    targets.forEach((target, k) => {
      bytes.writeBigUInt64LE(BigInt(target), at + 8 * k);
      relocations.push(at + 8 * k);
    });
  }
  for (const [name, s] of slots) if (s.offset < 0) throw new Error(`slot ${name} has a length but no buffer`);
  return { bytes, relocations, slots };
}

/** Puts `content` into a slot of a linked image and its length into the steps that use it. */
export function fillSlot(image: Image, memory: Uint8Array, name: string, content: Uint8Array): void {
  const s = image.slots.get(name);
  if (!s) throw new Error(`no slot ${name} in this program`);
  if (content.length > s.capacity) throw new Error(`slot ${name} holds ${s.capacity} bytes, not ${content.length}`);
  memory.set(content, s.offset);
  const view = new DataView(memory.buffer, memory.byteOffset, memory.byteLength);
  for (const at of s.lengthFields) view.setBigUint64(at, BigInt(content.length), true);
}

/** Writes the image into `memory` (mapped at `base`), adding base to every pointer. */
export function link(image: Image, memory: Uint8Array, base: bigint): void {
  memory.set(image.bytes);
  const view = new DataView(memory.buffer, memory.byteOffset, memory.byteLength);
  for (const at of image.relocations) view.setBigUint64(at, view.getBigUint64(at, true) + base, true);
}

export interface Failure {
  step: number;
  errno: number;
}

export function decodeFailures(bytes: Uint8Array): Failure[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Failure[] = [];
  for (let at = 0; at + RECORD_SIZE <= bytes.length; at += RECORD_SIZE) {
    out.push({ step: view.getUint32(at, true), errno: view.getInt32(at + 4, true) });
  }
  return out;
}
