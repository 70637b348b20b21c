import test from 'ava';
import { formatPublish, parsePublish, PublishSyntaxError, type PublishSpec } from '../../../packages/shared/src/publish.ts';

test('the forms of a published port', (t) => {
  t.deepEqual(parsePublish('8080:80'), { hostAddress: '0.0.0.0', hostPort: 8080, port: 80, protocol: 'tcp' });
  t.deepEqual(parsePublish('8080:80/tcp'), { hostAddress: '0.0.0.0', hostPort: 8080, port: 80, protocol: 'tcp' });
  t.deepEqual(parsePublish('5353:53/udp'), { hostAddress: '0.0.0.0', hostPort: 5353, port: 53, protocol: 'udp' });
  t.deepEqual(parsePublish('192.0.2.10:443:8443'), { hostAddress: '192.0.2.10', hostPort: 443, port: 8443, protocol: 'tcp' });
  t.deepEqual(parsePublish('10.0.0.1:1:65535/udp'), { hostAddress: '10.0.0.1', hostPort: 1, port: 65535, protocol: 'udp' });
  t.deepEqual(parsePublish('0.0.0.0:80:80'), { hostAddress: '0.0.0.0', hostPort: 80, port: 80, protocol: 'tcp' });
});

test('format is canonical and round-trips', (t) => {
  t.is(formatPublish(parsePublish('8080:80')), '8080:80/tcp');
  t.is(formatPublish(parsePublish('0.0.0.0:8080:80/udp')), '8080:80/udp');
  t.is(formatPublish(parsePublish('192.0.2.10:443:8443')), '192.0.2.10:443:8443/tcp');
  const specs: PublishSpec[] = [
    { hostAddress: '0.0.0.0', hostPort: 1, port: 2, protocol: 'udp' },
    { hostAddress: '203.0.113.255', hostPort: 65535, port: 1, protocol: 'tcp' },
  ];
  for (const s of specs) t.deepEqual(parsePublish(formatPublish(s)), s);
});

test('errors are one line that names the spec and what is expected', (t) => {
  const err = t.throws(() => parsePublish('80x'), { instanceOf: PublishSyntaxError }) as PublishSyntaxError;
  t.true(err instanceof Error);
  t.is(err.message, '-p 80x: expected [HOSTIP:]HOSTPORT:PORT[/tcp|/udp], e.g. 8080:80 or 192.0.2.10:5353:53/udp');
  t.is(err.spec, '80x');
  t.regex(err.reason, /^expected/);
  const cases: [string, RegExp][] = [
    ['80', /expected \[HOSTIP:\]HOSTPORT:PORT/],
    ['', /expected/],
    [':80', /expected/],
    ['80:', /expected/],
    ['1.2.3.4::80', /expected/],
    [' 80:80', /expected/],
    ['80:80 ', /protocol|expected/],
    ['8080:80/sctp', /protocol "sctp" is not tcp or udp/],
    ['8080:80/TCP', /protocol "TCP"/],
    ['8080:80/', /protocol ""/],
    ['0:80', /host port "0" is not a port number from 1 to 65535/],
    ['65536:80', /host port "65536"/],
    ['080:80', /host port "080"/],
    ['8080:0', /port "0" is not a port number/],
    ['8080:99999', /port "99999"/],
    ['1e3:80', /expected/],
    ['-1:80', /expected/],
    ['256.0.0.1:80:80', /host address "256.0.0.1" is not an IPv4 address/],
    ['1.2.3:80:80', /not an IPv4 address/],
    ['01.2.3.4:80:80', /not an IPv4 address/],
    ['localhost:80:80', /not an IPv4 address/],
    ['::1:80:80', /IPv6 host addresses are not supported/],
    ['[::1]:80:80', /IPv6/],
    ['[fe80::1]:80:80/udp', /IPv6/],
  ];
  for (const [spec, re] of cases) {
    const e = t.throws(() => parsePublish(spec), { instanceOf: PublishSyntaxError }, spec) as PublishSyntaxError;
    t.regex(e.message, re, spec);
    t.true(e.message.startsWith(`-p ${spec}: `), spec);
    t.false(e.message.includes('\n'), spec);
  }
});

test('the boundaries of the syntax', (t) => {
  t.deepEqual(parsePublish('65535:1'), { hostAddress: '0.0.0.0', hostPort: 65535, port: 1, protocol: 'tcp' });
  t.is(parsePublish('1.2.3.4:99:99/udp').hostAddress, '1.2.3.4');
  const reason = (spec: string): string => (t.throws(() => parsePublish(spec), { instanceOf: PublishSyntaxError }) as PublishSyntaxError).reason;
  t.is(reason('1:2:3:4'), 'IPv6 host addresses are not supported; give an IPv4 address or none ([HOSTIP:]HOSTPORT:PORT[/tcp|/udp])');
  t.is(reason('8080:80/sctp'), 'protocol "sctp" is not tcp or udp');
  t.is(reason('8080:123456'), 'port "123456" is not a port number from 1 to 65535');
  t.is(reason('65536:80'), 'host port "65536" is not a port number from 1 to 65535');
  t.is(reason('x.1.1.1:80:80'), 'host address "x.1.1.1" is not an IPv4 address such as 192.0.2.10');
  t.is(reason('a:80'), 'expected [HOSTIP:]HOSTPORT:PORT[/tcp|/udp], e.g. 8080:80 or 192.0.2.10:5353:53/udp');
  t.is(reason('80:b'), reason('a:80'));
  t.is(reason('1.2.3.4:80:x'), reason('a:80'));
  t.is(reason('8080:80/tcp/udp'), 'protocol "tcp/udp" is not tcp or udp');
  const e = new PublishSyntaxError('s', 'r');
  t.is(e.name, 'PublishSyntaxError');
  t.is(e.message, '-p s: r');
});
