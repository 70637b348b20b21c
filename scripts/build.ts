// Builds dist/launcher and dist/netsetup as Node single executable applications:
// esbuild bundles each program to one CommonJS file, Node turns it into a SEA
// blob (with koffi's native module as an asset), postject injects the blob into a
// stripped copy of the same Node that runs this script.
//   node scripts/build.ts [launcher|netsetup ...]
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import * as esbuild from 'esbuild';

const root = path.resolve(import.meta.dirname, '..');
const build = path.join(root, 'build');
const dist = path.join(root, 'dist');
const FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
const PROGRAMS = ['launcher', 'netsetup'];

function koffiNative(): string {
  const req = createRequire(path.join(root, 'packages/shared/package.json'));
  const pkgDir = path.dirname(req.resolve('koffi'));
  const platformDir = path.join(fs.realpathSync(pkgDir), '..', '@koromix', `koffi-linux-${process.arch}`);
  const file = path.join(platformDir, `linux_${process.arch}`, 'koffi.node');
  if (!fs.existsSync(file)) throw new Error(`koffi native module not found at ${file}`);
  return file;
}

async function buildProgram(name: string, native: string): Promise<void> {
  const entry = path.join(root, 'packages', name, 'src', 'main.ts');
  const bundle = path.join(build, `${name}.cjs`);
  await esbuild.build({
    entryPoints: [entry],
    outfile: bundle,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node24',
    minifySyntax: true,
    minifyWhitespace: true,
    legalComments: 'none',
    define: { 'import.meta.url': '"file:///sea/main.cjs"', 'import.meta.dirname': '"/sea"' },
    logLevel: 'warning',
  });
  const blob = path.join(build, `${name}.blob`);
  const config = path.join(build, `${name}.sea.json`);
  fs.writeFileSync(config, JSON.stringify({
    main: bundle,
    output: blob,
    disableExperimentalSEAWarning: true,
    useCodeCache: true,
    useSnapshot: false,
    execArgvExtension: 'none',
    assets: { 'koffi.node': native },
  }));
  execFileSync(process.execPath, ['--experimental-sea-config', config], { stdio: ['ignore', 'ignore', 'inherit'] });
  const exe = path.join(build, name);
  fs.copyFileSync(process.execPath, exe);
  fs.chmodSync(exe, 0o755);
  execFileSync('strip', ['--strip-all', exe]);
  execFileSync(process.execPath, [path.join(root, 'node_modules/postject/dist/cli.js'), exe, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', FUSE], { stdio: ['ignore', 'ignore', 'inherit'] });
  // A fresh copy, not the file postject rewrote in place: that one costs ~20 MB more RSS.
  fs.mkdirSync(dist, { recursive: true });
  const out = path.join(dist, name);
  fs.rmSync(out, { force: true });
  fs.copyFileSync(exe, out);
  fs.chmodSync(out, 0o755);
  console.log(`built ${path.relative(root, out)} (${(fs.statSync(out).size / 1e6).toFixed(0)} MB)`);
}

const wanted = process.argv.slice(2);
const names = (wanted.length > 0 ? wanted : PROGRAMS).filter((n) => fs.existsSync(path.join(root, 'packages', n, 'src', 'main.ts')));
fs.mkdirSync(build, { recursive: true });
const native = koffiNative();
for (const name of names) await buildProgram(name, native);
