import test from 'ava';
import { parseProcNet } from '../../../../packages/netsetup/src/kernel/sockets.ts';

test('/proc/net parsing: listening TCP, unconnected UDP, IPv4, dual-stack and v4-mapped IPv6', (t) => {
  const tcp = [
    '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
    '   0: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0',
    '   1: 0500000A:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 2 1 0 100 0 0 10 0',
    '   2: 0500000A:D2F0 0100000A:0016 01 00000000:00000000 00:00000000 00000000  1000        0 3 1 0 100 0 0 10 0',
    '',
  ].join('\n');
  t.deepEqual(parseProcNet(tcp, 'tcp'), [
    { protocol: 'tcp', address: '127.0.0.1', port: 3306 },
    { protocol: 'tcp', address: '10.0.0.5', port: 8080 },
  ]);
  const tcp6 = [
    '  sl  local_address                         remote_address                        st',
    '   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 0',
    '   1: 0000000000000000FFFF00000500000A:0050 00000000000000000000000000000000:0000 0A 0',
    '   2: 000080FE00000000FF005002020000FE:0051 00000000000000000000000000000000:0000 0A 0',
    '   3: 00000000000000000000000001000000:0052 00000000000000000000000000000000:0000 0A 0',
  ].join('\n');
  t.deepEqual(parseProcNet(tcp6, 'tcp'), [
    { protocol: 'tcp', address: '0.0.0.0', port: 22 },
    { protocol: 'tcp', address: '10.0.0.5', port: 80 },
  ]);
  const udp = [
    '   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops',
    '  100: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0 0',
    '  101: 0500000A:A000 0100000A:0035 01 00000000:00000000 00:00000000 00000000     0        0 1 2 0 0',
  ].join('\n');
  t.deepEqual(parseProcNet(udp, 'udp'), [{ protocol: 'udp', address: '0.0.0.0', port: 53 }]);
  t.deepEqual(parseProcNet('', 'tcp'), []);
});
