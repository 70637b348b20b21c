// nftables over netlink (NETLINK_NETFILTER): the few messages that change and list
// the elements of an existing set, wrapped in one transaction (a batch), and the
// ruleset's generation (bumped by every committed transaction). Pure
// (bytes in, bytes out), like netlink.ts whose primitives it reuses; the socket
// lives in the program. Tables, chains and rules are not built here: they are
// written rarely, as `nft -f` text. Layouts follow <linux/netfilter/nfnetlink.h>
// and <linux/netfilter/nf_tables.h>.
import { attr, attrNested, attrStr, message, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, parseAttrs } from './netlink.ts';

export const NETLINK_NETFILTER = 12;
export const NFPROTO_BRIDGE = 7;
export const NFNETLINK_V0 = 0;
export const NFNL_SUBSYS_NFTABLES = 10;
/** Batch delimiters (NLMSG_MIN_TYPE and the next): everything between them is one transaction. */
export const NFNL_MSG_BATCH_BEGIN = 0x10;
export const NFNL_MSG_BATCH_END = 0x11;

export const NFT_MSG_NEWTABLE = 0;
export const NFT_MSG_GETTABLE = 1;
export const NFT_MSG_NEWSETELEM = 12;
export const NFT_MSG_GETSETELEM = 13;
export const NFT_MSG_DELSETELEM = 14;
export const NFT_MSG_NEWGEN = 15;
export const NFT_MSG_GETGEN = 16;

export const NFTA_TABLE_NAME = 1;
export const NFTA_TABLE_HANDLE = 4;
export const NFTA_GEN_ID = 1;
/** The batch-begin attribute that makes the kernel refuse the whole batch
 *  (ERESTART) unless the ruleset's generation is still this one. */
export const NFNL_BATCH_GENID = 1;

export const NFTA_SET_ELEM_LIST_TABLE = 1;
export const NFTA_SET_ELEM_LIST_SET = 2;
export const NFTA_SET_ELEM_LIST_ELEMENTS = 3;
export const NFTA_LIST_ELEM = 1;
export const NFTA_SET_ELEM_KEY = 1;
export const NFTA_SET_ELEM_DATA = 2;
export const NFTA_SET_ELEM_FLAGS = 3;
export const NFTA_DATA_VALUE = 1;
export const NFT_SET_ELEM_INTERVAL_END = 0x1;

export const NFGENMSG_LEN = 4;

/** The message type of an nf_tables message: subsystem in the high byte. */
export const nftType = (msg: number): number => (NFNL_SUBSYS_NFTABLES << 8) | msg;

/** struct nfgenmsg: family, version, resource id (big-endian; the subsystem for batch delimiters). */
export function nfgenmsg(family: number, resId = 0): Buffer {
  const b = Buffer.alloc(NFGENMSG_LEN);
  b.writeUInt8(family, 0);
  b.writeUInt8(NFNETLINK_V0, 1);
  b.writeUInt16BE(resId, 2);
  return b;
}

/** BATCH_BEGIN; with `genid`, the batch applies only if the ruleset's generation is still `genid`. */
export const batchBegin = (seq: number, genid?: number): Buffer =>
  message(NFNL_MSG_BATCH_BEGIN, 0, seq, [nfgenmsg(0, NFNL_SUBSYS_NFTABLES), ...(genid === undefined ? [] : [attr(NFNL_BATCH_GENID, u32be(genid))])]);
export const batchEnd = (seq: number): Buffer => message(NFNL_MSG_BATCH_END, 0, seq, [nfgenmsg(0, NFNL_SUBSYS_NFTABLES)]);

/** One element: its key and, for a map, its data, as the bytes the set stores
 *  (a concatenation: each part padded to 4 bytes). */
export interface SetElement {
  key: Uint8Array;
  data?: Uint8Array;
}

export interface SetRef {
  family: number;
  table: string;
  set: string;
}

function u32be(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

const dataAttr = (type: number, value: Uint8Array): Buffer => attrNested(type, [attr(NFTA_DATA_VALUE, value)]);

function elementList(ref: SetRef, elements: SetElement[]): Buffer[] {
  return [
    nfgenmsg(ref.family),
    attrStr(NFTA_SET_ELEM_LIST_TABLE, ref.table),
    attrStr(NFTA_SET_ELEM_LIST_SET, ref.set),
    attrNested(
      NFTA_SET_ELEM_LIST_ELEMENTS,
      elements.map((e) => attrNested(NFTA_LIST_ELEM, [dataAttr(NFTA_SET_ELEM_KEY, e.key), ...(e.data ? [dataAttr(NFTA_SET_ELEM_DATA, e.data)] : [])])),
    ),
  ];
}

/** Adds elements; exclusive: an element whose key is there already fails the
 *  whole batch with EEXIST instead of being kept or changed. */
export const newSetElements = (seq: number, ref: SetRef, elements: SetElement[]): Buffer =>
  message(nftType(NFT_MSG_NEWSETELEM), NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq, elementList(ref, elements));

/** Deletes elements by key; one that is missing fails the whole batch with ENOENT. */
export const delSetElements = (seq: number, ref: SetRef, elements: SetElement[]): Buffer =>
  message(nftType(NFT_MSG_DELSETELEM), NLM_F_ACK, seq, elementList(ref, elements.map((e) => ({ key: e.key }))));

/** Looks elements up by key, outside any transaction (nothing to commit or
 *  abort): answered with a NEWSETELEM message per element found, ENOENT for one
 *  that is missing (or a missing set or table), and the ack. */
export const getSetElements = (seq: number, ref: SetRef, elements: SetElement[]): Buffer =>
  message(nftType(NFT_MSG_GETSETELEM), NLM_F_ACK, seq, elementList(ref, elements.map((e) => ({ key: e.key }))));

/** Every element of a set (answered with NEWSETELEM messages, then NLMSG_DONE). */
export const dumpSetElements = (seq: number, ref: SetRef): Buffer =>
  message(nftType(NFT_MSG_GETSETELEM), NLM_F_DUMP, seq, [nfgenmsg(ref.family), attrStr(NFTA_SET_ELEM_LIST_TABLE, ref.table), attrStr(NFTA_SET_ELEM_LIST_SET, ref.set)]);

/** A whole transaction: BATCH_BEGIN, the messages, BATCH_END. The kernel applies
 *  all of them or none; it answers each message sent with NLM_F_ACK (and each
 *  failing one) before send() returns. */
export function batch(seqs: { begin: number; end: number; genid?: number }, messages: Buffer[]): Buffer {
  return Buffer.concat([batchBegin(seqs.begin, seqs.genid), ...messages, batchEnd(seqs.end)]);
}

/** Asks for the ruleset's generation (answered with NEWGEN, then the ack).
 *  Any family: the generation is one per network namespace. */
export const getGeneration = (seq: number): Buffer => message(nftType(NFT_MSG_GETGEN), NLM_F_ACK, seq, [nfgenmsg(0)]);

/** NFTA_GEN_ID of a NEWGEN payload, or undefined without one. */
export function parseGeneration(payload: Buffer): number | undefined {
  const id = parseAttrs(payload.subarray(NFGENMSG_LEN)).find((a) => a.type === NFTA_GEN_ID);
  return id && id.value.length >= 4 ? id.value.readUInt32BE(0) : undefined;
}

/** Asks for one table (answered with NEWTABLE, then the ack; ENOENT if there is none). */
export const getTable = (seq: number, family: number, table: string): Buffer => message(nftType(NFT_MSG_GETTABLE), NLM_F_ACK, seq, [nfgenmsg(family), attrStr(NFTA_TABLE_NAME, table)]);

/** NFTA_TABLE_HANDLE of a NEWTABLE payload (a 64-bit number, as decimal text), or undefined. */
export function parseTableHandle(payload: Buffer): string | undefined {
  const h = parseAttrs(payload.subarray(NFGENMSG_LEN)).find((a) => a.type === NFTA_TABLE_HANDLE);
  return h && h.value.length >= 8 ? h.value.readBigUInt64BE(0).toString() : undefined;
}

const dataValue = (nested: Buffer): Buffer | undefined => parseAttrs(nested).find((a) => a.type === NFTA_DATA_VALUE)?.value;

/** The elements of a NEWSETELEM payload (nfgenmsg + attributes), e.g. a dump's reply. */
export function parseSetElements(payload: Buffer): SetElement[] {
  const list = parseAttrs(payload.subarray(NFGENMSG_LEN)).find((a) => a.type === NFTA_SET_ELEM_LIST_ELEMENTS);
  if (!list) return [];
  const out: SetElement[] = [];
  for (const item of parseAttrs(list.value)) {
    if (item.type !== NFTA_LIST_ELEM) continue;
    const attrs = parseAttrs(item.value);
    const key = attrs.find((a) => a.type === NFTA_SET_ELEM_KEY);
    if (!key) continue;
    const k = dataValue(key.value);
    if (!k) continue;
    const d = attrs.find((a) => a.type === NFTA_SET_ELEM_DATA);
    const dv = d ? dataValue(d.value) : undefined;
    out.push({ key: Buffer.from(k), ...(dv ? { data: Buffer.from(dv) } : {}) });
  }
  return out;
}
