// The test command Stryker's command runner runs for each mutant (stryker.config.json):
// the unit tests, with ava's --fail-fast, in Stryker's sandbox copy of the repository.
//
// Two things make that work and keep it practical:
// - Workspace links. Stryker links each packages/*/node_modules to the original tree, so
//   `@nsbox/shared/...` would load the original, unmutated shared sources (and a second
//   NsboxError class the tests' instanceOf checks do not match). The sandbox gets its own
//   node_modules folders whose @nsbox/* entries point at the sandbox's packages.
// - Test selection. A mutant can only change the outcome of the test files that import its
//   module, directly or through other modules; the others are not run for it. The mutant's
//   module is the mutated file whose instrumented code names the active mutant's id; if none
//   does (another instrumenter version), every unit test file runs. The dry run (no active
//   mutant) runs them all. `MUTATION_ALL_TESTS=1` runs them all for every mutant.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const root = process.cwd();
const ACTIVE = process.env.__STRYKER_ACTIVE_MUTANT__;

/** Give each packages/X/node_modules that links out of this tree a local copy whose @nsbox/* entries are this tree's packages. */
function localWorkspaceLinks(): void {
  const packages = path.join(root, 'packages');
  for (const name of fs.readdirSync(packages)) {
    const modules = path.join(packages, name, 'node_modules');
    let target: string;
    try {
      if (!fs.lstatSync(modules).isSymbolicLink()) continue;
      target = fs.realpathSync(modules);
    } catch {
      continue;
    }
    if (target.startsWith(root + path.sep)) continue; // done already (by a concurrent run, say)
    const local = fs.mkdtempSync(path.join(packages, name, '.node_modules-'));
    for (const entry of fs.readdirSync(target)) {
      if (entry === '@nsbox') {
        fs.mkdirSync(path.join(local, entry));
        for (const pkg of fs.readdirSync(path.join(target, entry))) {
          fs.symlinkSync(path.join(packages, pkg), path.join(local, entry, pkg));
        }
      } else {
        fs.symlinkSync(fs.realpathSync(path.join(target, entry)), path.join(local, entry));
      }
    }
    // A symlink renamed over a symlink: atomic, so a concurrent run sees the old or the new one.
    const link = `${local}.link`;
    fs.symlinkSync(path.basename(local), link);
    fs.renameSync(link, modules);
  }
}

/** Relative and @nsbox/shared imports of a TypeScript file, as absolute paths of existing files. */
function importsOf(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'([^']+)'/g)) {
    const spec = m[1]!;
    let resolved: string | undefined;
    if (spec.startsWith('.')) resolved = path.resolve(path.dirname(file), spec);
    else if (spec.startsWith('@nsbox/')) {
      const [, pkg, ...rest] = spec.split('/');
      resolved = path.join(root, 'packages', pkg!, 'src', `${rest.join('/')}.ts`);
    }
    if (resolved !== undefined && fs.existsSync(resolved)) out.push(resolved);
  }
  return out;
}

function unitTestFiles(dir = path.join(root, 'test/unit')): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return unitTestFiles(p);
    return e.name.endsWith('.test.ts') ? [p] : [];
  });
}

/** Every file `file` loads, itself included. */
function closure(file: string, seen = new Set<string>()): Set<string> {
  if (seen.has(file)) return seen;
  seen.add(file);
  for (const f of importsOf(file)) closure(f, seen);
  return seen;
}

/** The mutated module whose instrumented code holds mutant `id`, if any names it. */
function moduleOf(id: string): string | undefined {
  const config = JSON.parse(fs.readFileSync(path.join(root, 'stryker.config.json'), 'utf8')) as { mutate: string[] };
  const mark = new RegExp(`stryMutAct_\\w+\\("${id}"\\)`);
  return config.mutate.map((f) => path.join(root, f)).find((f) => mark.test(fs.readFileSync(f, 'utf8')));
}

localWorkspaceLinks();
let files = [path.join(root, 'test/unit')];
if (ACTIVE !== undefined && process.env.MUTATION_ALL_TESTS !== '1') {
  const mod = moduleOf(ACTIVE);
  if (mod !== undefined) files = unitTestFiles().filter((t) => closure(t).has(mod));
}
if (files.length === 0) process.exit(0); // no test loads the module: the mutant survives
const ava = path.join(root, 'node_modules/.bin/ava');
const r = spawnSync(ava, ['--fail-fast', ...files.map((f) => path.relative(root, f))], { stdio: 'inherit' });
process.exit(r.status ?? 1);
