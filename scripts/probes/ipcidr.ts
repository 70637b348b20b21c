// Probe: the empty program plus ip-cidr checking a network of a configuration
// (subnet, gateway inside it, first and last address). Its start-up minus the
// empty probe's is what ip-cidr would cost bundled into a program's single
// executable (scripts/bench.ts startup).
import IPCIDR from 'ip-cidr';

const subnet = '10.200.200.0/24';
if (!IPCIDR.isValidCIDR(subnet)) process.exitCode = 1;
const cidr = new IPCIDR(subnet);
if (!cidr.contains('10.200.200.1') || cidr.start() !== '10.200.200.0' || cidr.end() !== '10.200.200.255') process.exitCode = 1;
