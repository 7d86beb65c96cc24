#!/usr/bin/env node
// Builds one platform-specific .vsix per target (`vsce package --target`), each carrying only its own
// native binaries: `node scripts/package.mjs [--target linux-x64 ...] [--out dist-vsix]` (`npm run package`).
//
// Each target is staged in a temporary folder, so the working tree (dist/ included) is never changed:
// production bundles are built straight into the staging folder, the Marketplace README
// (README.marketplace.md) becomes the package's README.md, the manifest lists only the dependencies the
// bundles leave external, and node_modules holds just their production closure with other platforms'
// binaries left out. .vscodeignore then picks the files that ship, as for any vsce run. After packing, the
// .vsix's entries are checked: the target's binaries present, no other platform's, the bundles present.
//
// A target whose native binaries the installed packages do not ship (onnxruntime-node 1.30.0 has no
// darwin/x64 build) is reported and not built; asked for by --target, it is an error.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { zipEntries } from './zipEntries.mjs';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The Marketplace's platform targets HAQA is packaged for. */
export const TARGETS = ['win32-x64', 'win32-arm64', 'darwin-x64', 'darwin-arm64', 'linux-x64', 'linux-arm64'];

/**
 * Dependencies the bundles load from node_modules at run time (esbuild.mjs's `external`), with where each
 * keeps per-platform binaries: `platformOf(pathInPackage)` names the target a file belongs to, or null
 * for a file every platform needs. node-llama-cpp (an optional dependency on some branches) is not
 * shipped: npm installs only the host's @node-llama-cpp/<platform> package, so other targets' binaries
 * are not here to stage; the llama.cpp runtime stays a CLI feature for a local install.
 */
export const NATIVE = [
  {
    name: 'onnxruntime-node',
    platformOf(rel) {
      const m = /^bin\/napi-v\d+\/([^/]+)\/([^/]+)\//.exec(rel);
      return m ? `${m[1]}-${m[2]}` : null;
    },
    /**
     * Files never shipped: the CUDA / TensorRT execution providers that onnxruntime-node's install script
     * downloads for linux-x64 unless told not to (.npmrc's onnxruntime-node-install=skip does). HAQA runs the
     * CPU provider only, and they are hundreds of MB.
     */
    omit: (rel) => /(^|\/)libonnxruntime_providers_(cuda|tensorrt|shared)\./.test(rel),
    /** Files that must be in a target's package for the runtime to load there. */
    required: (target) => [`bin/napi-v6/${target.replace('-', '/')}/onnxruntime_binding.node`],
  },
];

/**
 * Plain-JavaScript dependencies the bundles leave external (the SSH runner and the fleet queue load them
 * only when a recipe's `runner` names them). Each ships with its production closure, whatever the target,
 * but without optional native accelerators: only `dependencies` are followed, so cpu-features (ssh2) and
 * msgpackr-extract (msgpackr) stay out, and ssh2's host-built sshcrypto.node is omitted; each package falls
 * back to JavaScript without them. Only their .js/.cjs/.mjs/.json files and licences ship.
 */
export const PURE = [
  { name: 'ssh2', omit: (rel) => rel.startsWith('lib/protocol/crypto/build/') },
  { name: 'bullmq', omit: (rel) => rel.startsWith('dist/esm/') }, // require() loads dist/cjs
  { name: 'ioredis', omit: () => false },
];

/**
 * Upper bounds of each package's size (bytes), checked on every build: the sizes measured on 2 Dec 2026
 * (onnxruntime-node 1.30.0, with ssh2, bullmq and ioredis: win32-x64 31.1 MB, win32-arm64 32.3, darwin-arm64
 * 28.4, linux-x64 20.2, linux-arm64 12.7) plus 12-14 %. Each is below its package plus any other
 * platform's binaries, so a leaked platform fails the build.
 */
export const MAX_BYTES = {
  'win32-x64': 35e6,
  'win32-arm64': 36.5e6,
  'darwin-arm64': 32e6,
  'linux-x64': 23e6,
  'linux-arm64': 14.5e6,
};
/**
 * Everything but the native binaries (bundles, schema, media, the runtime's JS, the pure externals): 2.1 MB measured.
 */
export const MAX_NON_NATIVE_BYTES = 3.2e6;

/** Files of the bundles every package must carry. */
export const BUNDLES = ['dist/client.js', 'dist/server.js', 'dist/cli.js', 'dist/worker.js', 'dist/layerWorker.js'];

/** Top-level files and folders staged for every target (.vscodeignore still decides what ships). */
const STAGED = ['LICENSE', 'CHANGELOG.md', '.vscodeignore', 'schemas', 'syntaxes', 'media', 'bin/haqa.js'];

function readJson(file) {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

/** Why a target cannot be built from the installed packages, or null when it can. */
export function unavailable(target, root = ROOT) {
  for (const dep of NATIVE) {
    const dir = path.join(root, 'node_modules', dep.name);
    const version = readJson(path.join(dir, 'package.json')).version;
    for (const rel of dep.required(target)) {
      if (!fs.existsSync(path.join(dir, rel))) return `${dep.name} ${version} ships no ${rel}`;
    }
  }
  return null;
}

/**
 * The production closure of `names` as folders relative to root (node_modules/x, or nested
 * node_modules/a/node_modules/x where npm put it there), resolved as Node resolves them.
 */
function closure(root, names) {
  const found = new Set();
  const visit = (fromDir, name) => {
    for (let dir = fromDir; ; dir = path.dirname(path.dirname(dir))) {
      const cand = path.join(dir, 'node_modules', name);
      if (fs.existsSync(path.join(cand, 'package.json'))) {
        const rel = path.relative(root, cand);
        if (found.has(rel)) return;
        found.add(rel);
        const pkg = readJson(path.join(cand, 'package.json'));
        // Optional dependencies are not followed: they are native accelerators of a package that works without.
        for (const d of Object.keys(pkg.dependencies ?? {})) visit(cand, d);
        return;
      }
      if (path.relative(root, dir) === '' || !dir.startsWith(root)) {
        throw new Error(
          `${name} (needed by ${path.relative(root, fromDir) || 'package.json'}) is not installed; run npm ci`,
        );
      }
    }
  };
  for (const n of names) visit(root, n);
  return [...found].sort();
}

/** The manifest as shipped: dependencies cut to the external ones, no dev tooling. */
export function stagedManifest(manifest) {
  const shipped = Object.fromEntries(
    Object.entries(manifest.dependencies ?? {}).filter(([name]) => [...NATIVE, ...PURE].some((d) => d.name === name)),
  );
  const { devDependencies, optionalDependencies, scripts, ...rest } = manifest;
  void devDependencies;
  void optionalDependencies;
  void scripts;
  return { ...rest, dependencies: shipped };
}

function run(cmd, args, cwd) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0) {
    throw new Error(
      `${path.basename(args[0] ?? cmd)} ${args.slice(1).join(' ')} failed (exit ${r.status}):\n${r.stdout}${r.stderr}`,
    );
  }
  return r.stdout;
}

/** Stages the files common to all targets in `dir`, with production bundles built there. */
function stageCommon(root, dir) {
  run(process.execPath, [path.join(root, 'esbuild.mjs'), '--production', `--outdir=${path.join(dir, 'dist')}`], root);
  for (const rel of STAGED) {
    const src = path.join(root, rel);
    if (!fs.existsSync(src)) throw new Error(`${rel} is missing from the repository`);
    fs.cpSync(src, path.join(dir, rel), { recursive: true });
  }
  fs.copyFileSync(path.join(root, 'README.marketplace.md'), path.join(dir, 'README.md'));
  const manifest = stagedManifest(readJson(path.join(root, 'package.json')));
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify(manifest, null, 2) + '\n');
  return manifest;
}

/** Replaces dir/node_modules with the external dependencies' closure, other platforms' binaries left out. */
function stageModules(root, dir, target) {
  fs.rmSync(path.join(dir, 'node_modules'), { recursive: true, force: true });
  const native = new Map(NATIVE.map((d) => [path.join('node_modules', d.name), d]));
  const pure = new Map(PURE.map((d) => [path.join('node_modules', d.name), d]));
  const shipped = closure(
    root,
    PURE.map((d) => d.name),
  );
  for (const rel of new Set([
    ...closure(
      root,
      NATIVE.map((d) => d.name),
    ),
    ...shipped,
  ])) {
    const src = path.join(root, rel);
    const dep = native.get(rel) ?? pure.get(rel);
    fs.cpSync(src, path.join(dir, rel), {
      recursive: true,
      filter: (file) => {
        const inPkg = path.relative(src, file).split(path.sep).join('/');
        if (inPkg.startsWith('node_modules')) return false; // nested packages are staged on their own
        if (!dep) return true;
        if (dep.omit(inPkg)) return false;
        if (!dep.platformOf) return true;
        const p = dep.platformOf(inPkg + '/');
        return p === null || p === target;
      },
    });
  }
  // The repository's .vscodeignore, plus the pure closure's files (its members are known only here).
  const whitelist = shipped.flatMap((rel) =>
    ['js', 'cjs', 'mjs', 'json']
      .map((x) => `!${rel.split(path.sep).join('/')}/**/*.${x}`)
      .concat(`!${rel.split(path.sep).join('/')}/LICENSE*`),
  );
  const base = fs.readFileSync(path.join(root, '.vscodeignore'), 'utf8');
  const added = `# Added by scripts/package.mjs: the plain-JS externals' closure\n${whitelist.join('\n')}\n`;
  fs.writeFileSync(path.join(dir, '.vscodeignore'), `${base}\n${added}`);
}

/** Checks a packed .vsix; returns its entries. Throws with every problem found. */
export function checkVsix(file, target, maxBytes = MAX_BYTES[target]) {
  const entries = zipEntries(file);
  const bytes = fs.statSync(file).size;
  const names = new Set(entries.map((e) => e.name));
  const problems = [];
  for (const b of BUNDLES) if (!names.has(`extension/${b}`)) problems.push(`missing extension/${b}`);
  for (const dep of NATIVE) {
    const prefix = `extension/node_modules/${dep.name}/`;
    for (const rel of dep.required(target)) if (!names.has(prefix + rel)) problems.push(`missing ${prefix}${rel}`);
    for (const e of entries) {
      if (!e.name.startsWith(prefix)) continue;
      const p = dep.platformOf(e.name.slice(prefix.length));
      if (p !== null && p !== target) problems.push(`${e.name} belongs to ${p}`);
      if (dep.omit(e.name.slice(prefix.length))) problems.push(`${e.name} is never shipped`);
    }
  }
  if (maxBytes === undefined) problems.push(`no size bound for ${target} in MAX_BYTES: measure one and add it`);
  else if (bytes > maxBytes) problems.push(`${bytes} bytes, larger than the bound of ${maxBytes} (MAX_BYTES)`);
  const nonNative = entries
    .filter((e) => !NATIVE.some((d) => e.name.startsWith(`extension/node_modules/${d.name}/bin/`)))
    .reduce((sum, e) => sum + e.compressedSize, 0);
  if (nonNative > MAX_NON_NATIVE_BYTES)
    problems.push(`${nonNative} bytes besides the native binaries, over ${MAX_NON_NATIVE_BYTES}`);
  if (problems.length) throw new Error(`${file}:\n  ${problems.join('\n  ')}`);
  return entries;
}

/**
 * Packages the given targets into outDir. Returns one row per target: its file and size, or why it
 * was not built. Targets named explicitly that cannot be built are an error.
 */
export function packageTargets({
  targets = TARGETS,
  outDir = path.join(ROOT, 'dist-vsix'),
  root = ROOT,
  strict = false,
} = {}) {
  for (const t of targets)
    if (!TARGETS.includes(t)) throw new Error(`unknown target ${t}; targets: ${TARGETS.join(', ')}`);
  if (!fs.existsSync(path.join(root, 'README.marketplace.md'))) throw new Error('README.marketplace.md is missing');
  const why = new Map(targets.map((t) => [t, unavailable(t, root)]));
  if (strict) for (const [t, w] of why) if (w) throw new Error(`${t}: cannot be built: ${w}`);
  const vsce = path.join(root, 'node_modules', '@vscode', 'vsce', 'vsce');
  const staging = fs.mkdtempSync(path.join(os.tmpdir(), 'haqa-package-'));
  const rows = [];
  try {
    const manifest = stageCommon(root, staging);
    fs.mkdirSync(outDir, { recursive: true });
    for (const target of targets) {
      if (why.get(target)) {
        rows.push({ target, skipped: why.get(target) });
        continue;
      }
      const started = Date.now();
      stageModules(root, staging, target);
      const file = path.join(outDir, `${manifest.name}-${target}-${manifest.version}.vsix`);
      run(process.execPath, [vsce, 'package', '--target', target, '--out', file], staging);
      const entries = checkVsix(file, target);
      rows.push({ target, file, bytes: fs.statSync(file).size, entries: entries.length, ms: Date.now() - started });
    }
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
  return rows;
}

function main(argv) {
  const targets = [];
  let outDir;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--target') targets.push(argv[++i]);
    else if (argv[i] === '--out') outDir = path.resolve(argv[++i]);
    else throw new Error(`unknown argument ${argv[i]}; usage: node scripts/package.mjs [--target T]... [--out DIR]`);
  }
  const rows = packageTargets({ targets: targets.length ? targets : TARGETS, outDir, strict: targets.length > 0 });
  for (const r of rows) {
    if (r.skipped) process.stdout.write(`${r.target}: not built: ${r.skipped}\n`);
    else {
      const mb = (r.bytes / 1e6).toFixed(1);
      process.stdout.write(
        `${r.target}: ${path.relative(process.cwd(), r.file)} ${mb} MB, ${r.entries} entries, ${r.ms} ms\n`,
      );
    }
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    main(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`haqa package: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  }
}
