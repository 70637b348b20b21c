// Builds dist/launcher and dist/netsetup as Node single executable applications:
// esbuild bundles each program to one CommonJS file, Node turns it into a SEA
// blob (with koffi's native module as an asset), postject injects the blob into a
// stripped copy of the same Node that runs this script.
//   node scripts/build.ts [PROGRAM...]        (--help lists the programs)
//
// Every program is built for a fast start: the bundle runs from a code cache
// that holds every function, not only the top level (a SEA's own code cache,
// useCodeCache, is made before the script runs, so V8 would still compile each
// function on its first call: ~3 ms of a netsetup call, ~2 ms of a launcher
// start); esbuild's __toESM helper, which copies all ~100 exports of node:fs
// onto a new object at each `import fs from 'node:fs'` (~0.2 ms each), is
// replaced by one that delegates to the module through the prototype chain; V8
// gets one worker thread; and V8 keeps the hash seed its start-up snapshot was
// made with (--no-rehash-snapshot): choosing a random one means rehashing every
// table in the snapshot, ~4 ms of each start. A random seed defends a program
// that builds hash tables from an attacker's input; neither program does: the
// launcher reads its own user's arguments, netsetup its arguments (checked
// before anything else) and root-owned files.
//
// The probes (scripts/probes/*.ts) are built the same way, so that benchmarks
// can subtract a start of exactly this kind of executable: probe-empty does
// nothing, probe-entry is netsetup's entry hardening and exit (the baseline of
// scripts/bench-netsetup.ts), probe-commander and probe-ipcidr load and use one
// package each (their cost bundled, in scripts/bench.ts startup).
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { Command } from 'commander';
import * as esbuild from 'esbuild';
import { execa } from 'execa';

const root = path.resolve(import.meta.dirname, '..');
const build = path.join(root, 'build');
const dist = path.join(root, 'dist');
const FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
/** What can be built, and from which entry; the default is the programs. */
const PROGRAMS: Record<string, string> = {
  launcher: 'packages/launcher/src/main.ts',
  netsetup: 'packages/netsetup/src/main.ts',
};
const PROBES: Record<string, string> = {
  'probe-empty': 'scripts/probes/empty.ts',
  'probe-entry': 'scripts/probes/entry.ts',
  'probe-commander': 'scripts/probes/commander.ts',
  'probe-ipcidr': 'scripts/probes/ipcidr.ts',
};
const ENTRIES: Record<string, string> = { ...PROGRAMS, ...PROBES };
/** V8 flags of every program; the code cache is made under the same flags, as
 *  V8 refuses a cache made under others. --optimize-for-size: smaller heap
 *  growth steps, which a short run never reaches (no measurable start-up cost)
 *  but which keep a user's serving netsetup at ~20 MiB of heap instead of ~30
 *  after a hundred sandboxes. */
const V8_FLAGS = ['--no-rehash-snapshot', '--optimize-for-size'];

const TO_ESM = 'var __toESM=(mod,isNodeMode,target)=>(target=mod!=null?__create(__getProtoOf(mod)):{},__copyProps(isNodeMode||!mod||!mod.__esModule?__defProp(target,"default",{value:mod,enumerable:!0}):target,mod));';
const TO_ESM_FAST = 'var __toESM=(mod,isNodeMode)=>isNodeMode||!mod||!mod.__esModule?Object.create(mod,{default:{value:mod,enumerable:!0}}):mod;';

/** The SEA's main script: compiles the bundle (an asset) with its code cache
 *  (another asset) and runs it with the SEA's require. */
const LOADER = `globalThis.__nsboxStart = process.uptime() * 1000;
const sea = require('node:sea');
const { Script } = require('node:vm');
const script = new Script(sea.getAsset('bundle.js', 'utf8'), { filename: 'bundle.js', cachedData: new Uint8Array(sea.getRawAsset('bundle.cache')) });
script.runInThisContext()(require, module, exports);
`;

/** Runs a build step; its stderr goes to ours. */
const step = (file: string, args: string[]) => execa(file, args, { stdin: 'ignore', stdout: 'ignore', stderr: 'inherit' });

/** Writes the bundle wrapped as a function expression, and a code cache of it
 *  with every function compiled (--no-lazy while compiling, the default flags
 *  again before the cache is written: V8 refuses a cache made under other flags). */
async function eagerCache(bundle: string, wrapped: string, cache: string): Promise<void> {
  const text = fs.readFileSync(bundle, 'utf8');
  // esbuild emits the helper only when the bundle imports a CommonJS module (or a builtin).
  if (text.includes('__toESM') && !text.includes(TO_ESM)) throw new Error(`${bundle}: esbuild's __toESM helper is not the expected one; update TO_ESM in scripts/build.ts`);
  fs.writeFileSync(wrapped, `(function (require, module, exports) {${text.replace(TO_ESM, TO_ESM_FAST)}\n})`);
  const make = `const fs = require('node:fs'), v8 = require('node:v8'), { Script } = require('node:vm');
v8.setFlagsFromString('--no-lazy');
const script = new Script(fs.readFileSync(process.argv[1], 'utf8'), { filename: 'bundle.js' });
v8.setFlagsFromString('--lazy');
fs.writeFileSync(process.argv[2], script.createCachedData());`;
  await step(process.execPath, [...V8_FLAGS, '-e', make, wrapped, cache]);
  const check = `const fs = require('node:fs'), { Script } = require('node:vm');
const script = new Script(fs.readFileSync(process.argv[1], 'utf8'), { filename: 'bundle.js', cachedData: fs.readFileSync(process.argv[2]) });
process.exit(script.cachedDataRejected ? 1 : 0);`;
  try {
    await step(process.execPath, [...V8_FLAGS, '-e', check, wrapped, cache]);
  } catch {
    throw new Error(`${cache}: V8 rejects the code cache it just made`);
  }
}

function koffiNative(): string {
  const req = createRequire(path.join(root, 'packages/shared/package.json'));
  const pkgDir = path.dirname(req.resolve('koffi'));
  const platformDir = path.join(fs.realpathSync(pkgDir), '..', '@koromix', `koffi-linux-${process.arch}`);
  const file = path.join(platformDir, `linux_${process.arch}`, 'koffi.node');
  if (!fs.existsSync(file)) throw new Error(`koffi native module not found at ${file}`);
  return file;
}

async function buildProgram(name: string, native: string): Promise<void> {
  const entry = path.join(root, ENTRIES[name]!);
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
  const main = path.join(build, `${name}.loader.cjs`);
  fs.writeFileSync(main, LOADER);
  // koffi's module is an asset of every program, probes included: a probe's
  // executable is then the same size as the programs' and starts alike.
  const assets: Record<string, string> = {
    'koffi.node': native,
    'bundle.js': path.join(build, `${name}.bundle.js`),
    'bundle.cache': path.join(build, `${name}.bundle.cache`),
  };
  await eagerCache(bundle, assets['bundle.js']!, assets['bundle.cache']!);
  fs.writeFileSync(config, JSON.stringify({
    main,
    output: blob,
    disableExperimentalSEAWarning: true,
    useCodeCache: false,
    useSnapshot: false,
    execArgvExtension: 'none',
    // One V8 worker thread instead of one per core: fewer threads to start, and
    // to signal at each set*id call (glibc changes the ids of every thread).
    execArgv: ['--v8-pool-size=1', ...V8_FLAGS],
    assets,
  }));
  await step(process.execPath, ['--experimental-sea-config', config]);
  const exe = path.join(build, name);
  fs.copyFileSync(process.execPath, exe);
  fs.chmodSync(exe, 0o755);
  await step('strip', ['--strip-all', exe]);
  await step(process.execPath, [path.join(root, 'node_modules/postject/dist/cli.js'), exe, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', FUSE]);
  // A fresh copy, not the file postject rewrote in place: that one costs ~20 MB more RSS.
  fs.mkdirSync(dist, { recursive: true });
  const out = path.join(dist, name);
  fs.rmSync(out, { force: true });
  fs.copyFileSync(exe, out);
  fs.chmodSync(out, 0o755);
  console.log(`built ${path.relative(root, out)} (${(fs.statSync(out).size / 1e6).toFixed(0)} MB)`);
}

const cli = new Command('node scripts/build.ts')
  .description('Build the programs (default: launcher netsetup) or probes into dist/ as single executables.')
  .argument('[program...]', `what to build: ${Object.keys(ENTRIES).join(', ')}, or "probes" for every probe`)
  .addHelpText('after', '\nProbes are built exactly like the programs, for the benchmarks (scripts/bench.ts, scripts/bench-netsetup.ts).')
  .action(async (wanted: string[]) => {
    const names = wanted.length === 0 ? Object.keys(PROGRAMS) : [...new Set(wanted.flatMap((n) => (n === 'probes' ? Object.keys(PROBES) : [n])))];
    const unknown = names.filter((n) => !(n in ENTRIES));
    if (unknown.length > 0) cli.error(`build: unknown program '${unknown[0]}' (choose from: ${Object.keys(ENTRIES).join(', ')}, probes)`);
    fs.mkdirSync(build, { recursive: true });
    const native = koffiNative();
    for (const name of names) await buildProgram(name, native);
  });
try {
  await cli.parseAsync();
} catch (err) {
  console.error(`build: ${(err as Error).message}`);
  process.exitCode = 1;
}
