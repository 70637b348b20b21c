import test from 'ava';
import * as nl from '../../../packages/shared/src/netlink.ts';
import * as nf from '../../../packages/shared/src/nfnetlink.ts';

const ref: nf.SetRef = { family: nf.NFPROTO_BRIDGE, table: 'nsbox', set: 'port_group' };
const key = Buffer.from('nsb01234567\0\0\0\0\0', 'latin1');
const data = Buffer.from([0xe8, 0x03, 0, 0]);

test('batch delimiters carry the nf_tables subsystem, big-endian, in nfgenmsg', (t) => {
  for (const [m, type] of [
    [nf.batchBegin(5), nf.NFNL_MSG_BATCH_BEGIN],
    [nf.batchEnd(6), nf.NFNL_MSG_BATCH_END],
  ] as const) {
    t.is(m.length, 20);
    t.is(m.readUInt32LE(0), 20);
    t.is(m.readUInt16LE(4), type);
    t.is(m.readUInt16LE(6), nl.NLM_F_REQUEST);
    t.is(m.readUInt8(16), 0, 'AF_UNSPEC');
    t.is(m.readUInt16BE(18), nf.NFNL_SUBSYS_NFTABLES);
  }
});

test('NEWSETELEM: subsystem in the high byte, exclusive create, family, table, set, key and data', (t) => {
  const m = nf.newSetElements(42, ref, [{ key, data }]);
  const [msg] = nl.parseMessages(m);
  t.is(msg!.type, (10 << 8) | 12);
  t.is(msg!.flags, nl.NLM_F_REQUEST | nl.NLM_F_ACK | nl.NLM_F_CREATE | nl.NLM_F_EXCL);
  t.is(msg!.seq, 42);
  t.is(msg!.payload.readUInt8(0), 7, 'NFPROTO_BRIDGE');
  t.is(msg!.payload.readUInt8(1), nf.NFNETLINK_V0);
  const attrs = nl.parseAttrs(msg!.payload.subarray(nf.NFGENMSG_LEN));
  t.deepEqual(
    attrs.map((a) => a.type),
    [nf.NFTA_SET_ELEM_LIST_TABLE, nf.NFTA_SET_ELEM_LIST_SET, nf.NFTA_SET_ELEM_LIST_ELEMENTS],
  );
  t.is(attrs[0]!.value.toString(), 'nsbox\0');
  t.is(attrs[1]!.value.toString(), 'port_group\0');
  t.true(attrs[2]!.nested);
  const [elem] = nl.parseAttrs(attrs[2]!.value);
  t.is(elem!.type, nf.NFTA_LIST_ELEM);
  const inner = nl.parseAttrs(elem!.value);
  t.deepEqual(
    inner.map((a) => [a.type, a.nested]),
    [
      [nf.NFTA_SET_ELEM_KEY, true],
      [nf.NFTA_SET_ELEM_DATA, true],
    ],
  );
  const [value] = nl.parseAttrs(inner[0]!.value);
  t.is(value!.type, nf.NFTA_DATA_VALUE);
  t.deepEqual(value!.value, key);
  t.deepEqual(nf.parseSetElements(msg!.payload), [{ key, data }]);
});

test('DELSETELEM names keys only; a dump asks for the whole set', (t) => {
  const [del] = nl.parseMessages(nf.delSetElements(7, ref, [{ key, data }, { key: Buffer.alloc(16, 1) }]));
  t.is(del!.type, (10 << 8) | 14);
  t.is(del!.flags, nl.NLM_F_REQUEST | nl.NLM_F_ACK);
  t.deepEqual(nf.parseSetElements(del!.payload), [{ key }, { key: Buffer.alloc(16, 1) }]);
  const [dump] = nl.parseMessages(nf.dumpSetElements(8, ref));
  t.is(dump!.type, (10 << 8) | 13);
  t.is(dump!.flags, nl.NLM_F_REQUEST | nl.NLM_F_DUMP);
  t.deepEqual(nf.parseSetElements(dump!.payload), []);
});

test('a lookup (GETSETELEM without NLM_F_DUMP) names keys only and asks for an ack, outside any batch', (t) => {
  const [get] = nl.parseMessages(nf.getSetElements(9, ref, [{ key, data }]));
  t.is(get!.type, (10 << 8) | 13);
  t.is(get!.flags, nl.NLM_F_REQUEST | nl.NLM_F_ACK);
  t.is(get!.seq, 9);
  t.deepEqual(nf.parseSetElements(get!.payload), [{ key }]);
});

test('a batch is begin, the messages in order, end', (t) => {
  const a = nf.newSetElements(2, ref, [{ key, data }]);
  const b = nf.delSetElements(3, ref, [{ key }]);
  const all = nl.parseMessages(nf.batch({ begin: 1, end: 4 }, [a, b]));
  t.deepEqual(
    all.map((m) => [m.type, m.seq]),
    [
      [nf.NFNL_MSG_BATCH_BEGIN, 1],
      [(10 << 8) | 12, 2],
      [(10 << 8) | 14, 3],
      [nf.NFNL_MSG_BATCH_END, 4],
    ],
  );
});

test('parseSetElements skips entries without a key', (t) => {
  const payload = Buffer.concat([
    nf.nfgenmsg(nf.NFPROTO_BRIDGE),
    nl.attrNested(nf.NFTA_SET_ELEM_LIST_ELEMENTS, [
      nl.attrNested(nf.NFTA_LIST_ELEM, [nl.attrU32(nf.NFTA_SET_ELEM_FLAGS, 0)]),
      nl.attrNested(nf.NFTA_LIST_ELEM, [nl.attrNested(nf.NFTA_SET_ELEM_KEY, [nl.attr(nf.NFTA_DATA_VALUE, key)])]),
    ]),
  ]);
  t.deepEqual(nf.parseSetElements(payload), [{ key }]);
});

test('a batch with a generation carries NFNL_BATCH_GENID, big-endian, in its begin; without, the begin is bare', (t) => {
  const [begin] = nl.parseMessages(nf.batch({ begin: 1, end: 2, genid: 0x01020304 }, []));
  t.is(begin!.type, nf.NFNL_MSG_BATCH_BEGIN);
  t.is(begin!.payload.readUInt16BE(2), nf.NFNL_SUBSYS_NFTABLES);
  const attrs = nl.parseAttrs(begin!.payload.subarray(nf.NFGENMSG_LEN));
  t.deepEqual(
    attrs.map((a) => [a.type, [...a.value]]),
    [[nf.NFNL_BATCH_GENID, [1, 2, 3, 4]]],
  );
  const [bare] = nl.parseMessages(nf.batch({ begin: 1, end: 2 }, []));
  t.is(bare!.payload.length, nf.NFGENMSG_LEN);
});

test('GETGEN asks with an ack, any family; parseGeneration reads NFTA_GEN_ID big-endian', (t) => {
  const [get] = nl.parseMessages(nf.getGeneration(11));
  t.is(get!.type, (10 << 8) | 16);
  t.is(get!.flags, nl.NLM_F_REQUEST | nl.NLM_F_ACK);
  t.is(get!.seq, 11);
  t.is(get!.payload.length, nf.NFGENMSG_LEN);
  t.is(get!.payload.readUInt8(0), 0, 'AF_UNSPEC');
  const id = Buffer.alloc(4);
  id.writeUInt32BE(0xfffffffe);
  const reply = Buffer.concat([nf.nfgenmsg(0), nl.attr(nf.NFTA_GEN_ID, id), nl.attrU32(2, 1234)]);
  t.is(nf.parseGeneration(reply), 0xfffffffe);
  t.is(nf.parseGeneration(nf.nfgenmsg(0)), undefined);
  t.is(nf.parseGeneration(Buffer.concat([nf.nfgenmsg(0), nl.attr(nf.NFTA_GEN_ID, Buffer.from([1, 2]))])), undefined, 'too short');
});

test('GETTABLE names family and table; parseTableHandle reads the 64-bit handle as decimal', (t) => {
  const [get] = nl.parseMessages(nf.getTable(12, nf.NFPROTO_BRIDGE, 'nsbox'));
  t.is(get!.type, (10 << 8) | 1);
  t.is(get!.flags, nl.NLM_F_REQUEST | nl.NLM_F_ACK);
  t.is(get!.payload.readUInt8(0), nf.NFPROTO_BRIDGE);
  const attrs = nl.parseAttrs(get!.payload.subarray(nf.NFGENMSG_LEN));
  t.deepEqual(
    attrs.map((a) => [a.type, a.value.toString()]),
    [[nf.NFTA_TABLE_NAME, 'nsbox\0']],
  );
  const handle = Buffer.alloc(8);
  handle.writeBigUInt64BE(2n ** 40n + 7n);
  const reply = Buffer.concat([nf.nfgenmsg(nf.NFPROTO_BRIDGE), nl.attrStr(nf.NFTA_TABLE_NAME, 'nsbox'), nl.attr(nf.NFTA_TABLE_HANDLE, handle)]);
  t.is(nf.parseTableHandle(reply), String(2n ** 40n + 7n));
  t.is(nf.parseTableHandle(Buffer.concat([nf.nfgenmsg(nf.NFPROTO_BRIDGE), nl.attrStr(nf.NFTA_TABLE_NAME, 'nsbox')])), undefined);
});
