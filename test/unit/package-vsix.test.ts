// Issue 21: one platform-specific .vsix per target, each with only its own native binaries. The packager
// (scripts/package.mjs) runs once for this file, for the host's target and one foreign target (all five take
// minutes under load; `npm run package` checks each one's entries and size bound as it builds it).
import { before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { builtinModules } from 'node:module';

const root = path.join(__dirname, '..', '..');
const host = `${process.platform}-${process.arch}`;
/** A target of another OS than the host's, with the largest binaries. */
const FOREIGN = process.platform === 'win32' ? 'linux-arm64' : 'win32-arm64';

type Row = { target: string; file?: string; bytes?: number; skipped?: string };
type Entry = { name: string; size: number; compressedSize: number };
type Packager = {
  TARGETS: string[];
  MAX_BYTES: Record<string, number>;
  MAX_NON_NATIVE_BYTES: number;
  checkVsix(file: string, target: string, maxBytes?: number): Entry[];
  NATIVE: { name: string; omit(rel: string): boolean; platformOf(rel: string): string | null }[];
  packageTargets(o: { targets?: string[]; outDir?: string; root?: string; strict?: boolean }): Row[];
  unavailable(target: string, root?: string): string | null;
};
type Zip = { zipEntries(f: string): Entry[]; zipExtract(f: string, dir: string): string[] };

let pkg: Packager;
let zip: Zip;
let out: string;
let rows: Row[];
let statusBefore: string;
let distBefore: string | null;

const built = () => rows.filter((r) => r.file);
const entriesOf = (r: Row) => zip.zipEntries(r.file!);
/** The folder a built package was extracted to; its files are under extension/. */
const unpacked = (r: Row) => path.join(out, r.target);

const gitStatus = () => execFileSync('git', ['status', '--porcelain', '--ignored=no'], { cwd: root, encoding: 'utf8' });
const distStamp = () => {
  const f = path.join(root, 'dist', 'client.js');
  return fs.existsSync(f) ? `${fs.statSync(f).mtimeMs}:${fs.statSync(f).size}` : null;
};

before(async () => {
  pkg = (await import(path.join(root, 'scripts', 'package.mjs'))) as Packager;
  zip = (await import(path.join(root, 'scripts', 'zipEntries.mjs'))) as Zip;
  out = fs.mkdtempSync(path.join(os.tmpdir(), 'haqa-vsix-test-'));
  statusBefore = gitStatus();
  distBefore = distStamp();
  rows = pkg.packageTargets({ targets: [...new Set([host, FOREIGN, 'darwin-x64'])], outDir: out });
  for (const r of built()) zip.zipExtract(r.file!, path.join(out, r.target));
});

after(() => fs.rmSync(out, { recursive: true, force: true }));

test('every target is built except those whose binaries onnxruntime-node does not ship, with the reason', () => {
  assert.deepEqual(
    rows.map((r) => r.target),
    [...new Set([host, FOREIGN, 'darwin-x64'])],
  );
  for (const r of rows) {
    const why = pkg.unavailable(r.target);
    if (why) assert.equal(r.skipped, why, r.target);
    else assert.ok(r.file && fs.existsSync(r.file), r.target);
  }
  assert.ok(
    built().some((r) => r.target === host),
    `the host target ${host} is built`,
  );
  assert.ok(built().length >= 2, 'a foreign target is built too');
  for (const r of rows.filter((x) => x.skipped)) assert.match(r.skipped!, new RegExp(r.target.replace('-', '/')));
});

test('each package carries its own platform binaries and no other platform', () => {
  for (const r of built()) {
    const [plat, arch] = r.target.split('-');
    const names = entriesOf(r).map((e) => e.name);
    const native = names.filter((n) => /\.(node|dll|so(\.\d+)*|dylib)$/.test(n));
    assert.ok(
      names.includes(`extension/node_modules/onnxruntime-node/bin/napi-v6/${plat}/${arch}/onnxruntime_binding.node`),
      r.target,
    );
    for (const n of native) {
      assert.ok(
        n.startsWith(`extension/node_modules/onnxruntime-node/bin/napi-v6/${plat}/${arch}/`),
        `${r.target}: ${n}`,
      );
    }
    const manifest = fs.readFileSync(path.join(unpacked(r), 'extension.vsixmanifest'), 'utf8');
    assert.match(manifest, new RegExp(`TargetPlatform="${r.target}"`), `${r.target} vsixmanifest`);
  }
});

test('each package has the bundles, schema, grammar, media and Marketplace README; no sources, tests or caches', () => {
  const marketplaceTitle = fs.readFileSync(path.join(root, 'README.marketplace.md'), 'utf8').split('\n')[0];
  assert.notEqual(
    fs.readFileSync(path.join(root, 'README.md'), 'utf8').split('\n')[0],
    marketplaceTitle,
    'the READMEs differ',
  );
  for (const r of built()) {
    const names = entriesOf(r).map((e) => e.name);
    for (const f of [
      'dist/client.js',
      'dist/server.js',
      'dist/cli.js',
      'dist/worker.js',
      'dist/layerWorker.js',
      'package.json',
      'readme.md',
      'changelog.md',
      'LICENSE.txt',
      'schemas/haqa.schema.json',
      'syntaxes/haqa.injection.tmLanguage.json',
      'media/icon.png',
      'bin/haqa.js',
      'media/results/results.js',
    ]) {
      assert.ok(names.includes(`extension/${f}`), `${r.target}: ${f}`);
    }
    const own = names.filter((n) => !n.startsWith('extension/node_modules/'));
    const bad = own
      .filter((n) =>
        /(^|\/)(src|test|\.cache|examples|bench|docs|scripts|\.haqa)\//.test(n.replace(/^extension\//, '')),
      )
      .concat(names.filter((n) => /\.(ts|map|onnx)$/.test(n)))
      .concat(
        names.filter(
          (n) => n.startsWith('extension/node_modules/') && /\.md$/.test(n) && !/\/LICEN[CS]E[^/]*$/.test(n),
        ),
      )
      .concat(
        names.filter((n) => n.includes('/node_modules/.bin/') || n.startsWith('extension/node_modules/@vscode/')),
      );
    assert.deepEqual(bad, [], r.target);
    const ext = path.join(unpacked(r), 'extension');
    assert.equal(fs.readFileSync(path.join(ext, 'readme.md'), 'utf8').split('\n')[0], marketplaceTitle);
    const m = JSON.parse(fs.readFileSync(path.join(ext, 'package.json'), 'utf8'));
    assert.deepEqual(Object.keys(m.dependencies).sort(), ['bullmq', 'ioredis', 'onnxruntime-node', 'ssh2']);
    assert.equal(m.devDependencies, undefined);
    assert.equal(m.scripts, undefined);
  }
});

test('package sizes stay within their bounds', () => {
  for (const r of built()) {
    const max = pkg.MAX_BYTES[r.target];
    assert.ok(max, `a bound for ${r.target}`);
    assert.ok(r.bytes! <= max, `${r.target}: ${r.bytes} bytes > ${max}`);
    const nonNative = entriesOf(r)
      .filter((e) => !e.name.includes('/bin/napi-v'))
      .reduce((s, e) => s + e.compressedSize, 0);
    assert.ok(nonNative <= pkg.MAX_NON_NATIVE_BYTES, `${r.target}: ${nonNative} bytes outside the native binaries`);
  }
});

test("the packager's check refuses a package over its size bound", () => {
  const r = built().find((x) => x.target === host)!;
  assert.throws(() => pkg.checkVsix(r.file!, host, 1e6), /larger than the bound of 1000000/);
  assert.ok(pkg.checkVsix(r.file!, host).length > 0);
});

test('the host package runs: every module the bundles require is shipped, its onnxruntime loads the fixture', () => {
  const r = built().find((x) => x.target === host)!;
  const ext = path.join(unpacked(r), 'extension');
  {
    const builtins = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);
    for (const b of ['client', 'server', 'cli', 'worker', 'layerWorker']) {
      const js = fs.readFileSync(path.join(ext, 'dist', `${b}.js`), 'utf8');
      // A require inside a string or template is generated code (ajv's standalone mode), not a load of this bundle.
      const bare = [...js.matchAll(/(?<![`'])require\("([^"./][^"]*)"\)/g)]
        .map((m) => m[1])
        .filter((m) => !builtins.has(m) && m !== 'vscode');
      for (const m of new Set(bare)) {
        const name = m
          .split('/')
          .slice(0, m.startsWith('@') ? 2 : 1)
          .join('/');
        assert.ok(
          fs.existsSync(path.join(ext, 'node_modules', name, 'package.json')),
          `dist/${b}.js requires ${m}, not shipped`,
        );
        if (name !== m)
          assert.ok(fs.existsSync(path.join(ext, 'node_modules', m)), `dist/${b}.js requires ${m}, not shipped`);
      }
    }
    const model = path.join(root, 'examples', 'tiny-llama', 'model.onnx');
    // The plain-JS externals load from the package too (without their optional native accelerators).
    for (const m of ['ssh2', 'bullmq', 'ioredis']) {
      execFileSync(process.execPath, ['-e', `require(${JSON.stringify(path.join(ext, 'node_modules', m))})`], {
        encoding: 'utf8',
      });
    }
    const script = `const ort = require(${JSON.stringify(path.join(ext, 'node_modules', 'onnxruntime-node'))});
      ort.InferenceSession.create(${JSON.stringify(model)}).then((s) => console.log(JSON.stringify(s.inputNames)));`;
    const outText = execFileSync(process.execPath, ['-e', script], {
      encoding: 'utf8',
      env: { ...process.env, NODE_PATH: '' },
    });
    assert.ok(JSON.parse(outText.trim()).includes('input_ids'), outText);
  }
});

test('packaging leaves the working tree and dist/ as they were', () => {
  assert.equal(gitStatus(), statusBefore);
  assert.equal(distStamp(), distBefore);
});

test("onnxruntime's GPU providers are never staged; the CPU runtime is", () => {
  const ort = pkg.NATIVE.find((d) => d.name === 'onnxruntime-node')!;
  for (const f of ['cuda.so', 'tensorrt.so', 'shared.so'])
    assert.ok(ort.omit(`bin/napi-v6/linux/x64/libonnxruntime_providers_${f}`), f);
  assert.equal(ort.omit('bin/napi-v6/linux/x64/libonnxruntime.so.1'), false);
  assert.equal(ort.platformOf('bin/napi-v6/win32/arm64/DirectML.dll'), 'win32-arm64');
  assert.equal(ort.platformOf('dist/binding.js'), null);
});

test('a target whose binaries are missing is refused by name, and asked for explicitly, the packager errors', () => {
  const fake = fs.mkdtempSync(path.join(os.tmpdir(), 'haqa-vsix-fake-'));
  try {
    const ort = path.join(fake, 'node_modules', 'onnxruntime-node');
    fs.mkdirSync(path.join(ort, 'bin', 'napi-v6', 'linux', 'arm64'), { recursive: true });
    fs.writeFileSync(path.join(ort, 'package.json'), JSON.stringify({ name: 'onnxruntime-node', version: '9.9.9' }));
    fs.writeFileSync(path.join(ort, 'bin', 'napi-v6', 'linux', 'arm64', 'onnxruntime_binding.node'), '');
    assert.equal(pkg.unavailable('linux-arm64', fake), null);
    assert.match(pkg.unavailable('linux-x64', fake)!, /onnxruntime-node 9\.9\.9 ships no bin\/napi-v6\/linux\/x64\//);
    fs.writeFileSync(path.join(fake, 'README.marketplace.md'), '# x\n');
    assert.throws(
      () => pkg.packageTargets({ targets: ['linux-x64'], root: fake, outDir: path.join(fake, 'o'), strict: true }),
      /linux-x64: cannot be built: onnxruntime-node 9\.9\.9 ships no/,
    );
    assert.throws(() => pkg.packageTargets({ targets: ['beos-x64'], root: fake }), /unknown target beos-x64/);
  } finally {
    fs.rmSync(fake, { recursive: true, force: true });
  }
});
