import test from 'ava';
import { judgeStart } from '../../../packages/launcher/src/outcome.ts';
import { plan } from './_plan.ts';

test('judgeStart: success, setup failure, exec failures', (t) => {
  const p = plan({ command: ['/bin/x'] });
  t.deepEqual(judgeStart(p, [], '/bin/x'), { started: true });
  const chdir = p.steps.findIndex((s) => s.what === 'pivot_root into the rootfs');
  t.not(chdir, -1);
  const failed = (o: ReturnType<typeof judgeStart>) => (o.started ? undefined : { exit: o.error.exit, errno: o.error.errnoName, line: o.error.line('launcher') });
  t.deepEqual(failed(judgeStart(p, [{ step: chdir, errno: 22 }], '/bin/x')), { exit: 125, errno: 'EINVAL', line: 'launcher: sandbox setup failed: pivot_root into the rootfs: Invalid argument (EINVAL).' });
  t.like(failed(judgeStart(p, [{ step: p.execFrom, errno: 2 }], '/bin/x')), { exit: 127 });
  t.like(failed(judgeStart(p, [{ step: p.execFrom, errno: 13 }], '/bin/x')), { exit: 126, errno: 'EACCES' });
  const soft = p.steps.findIndex((s) => s.soft);
  t.not(soft, -1);
  t.deepEqual(judgeStart(p, [{ step: soft, errno: 2 }], '/bin/x'), { started: true }, 'soft failures before exec do not stop the start');
});
