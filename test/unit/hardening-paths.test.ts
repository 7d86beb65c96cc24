// The path policy (server/src/util/paths.ts) against a hostile folder: prune never deletes outside the
// workspace; a path `haqa check` calls "not read" is refused by quantize and bench with the same code,
// wording and location; FIFOs and devices never hang or fill memory; external data cannot leave the
// model's folder through a symlink; leftovers of killed atomic writes are cleaned up.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { main } from '../../server/src/cli';
import { hashModelFiles, RunStore } from '../../server/src/bench/store';
import { runRecipe } from '../../server/src/bench/run';
import { resolveRecipe } from '../../server/src/config/recipe';
import { compressModel } from '../../server/src/compress/pipeline';
import { readModel, readTensorBytes, writeModel } from '../../server/src/model/onnx';
import { writeFileAtomic } from '../../server/src/util/atomicWrite';
import { PathError, readRegularTextSync, recipeReadRefusal, recipeRoots } from '../../server/src/util/paths';
import { tempDir, tinyMlpModel, writeTinyModel } from '../helpers/tinyModel';

async function cli(argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, {
    out: (l) => out.push(l),
    err: (l) => err.push(l),
    signal: new AbortController().signal,
  });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

function mkfifo(file: string): void {
  execFileSync('mkfifo', [file]);
}

const haveMkfifo = spawnSync('mkfifo', ['--version']).status === 0;
const HOUR_AGO = new Date(Date.now() - 3600_000);

/** A folder outside every workspace, with something prune must never touch. */
function victim(): { dir: string; file: string } {
  const dir = tempDir('haqa-victim-');
  for (const name of ['aaaa', 'bbbb']) {
    fs.mkdirSync(path.join(dir, name));
    fs.writeFileSync(path.join(dir, name, 'precious.txt'), 'keep me');
    fs.utimesSync(path.join(dir, name), HOUR_AGO, HOUR_AGO);
  }
  return { dir, file: path.join(dir, 'aaaa', 'precious.txt') };
}

// ---------------------------------------------------------------- item 1: prune

test('prune: .haqa/artifacts a symlink to another folder deletes nothing there (store API and CLI)', async () => {
  const ws = tempDir('haqa-prune-ws-');
  const v = victim();
  fs.mkdirSync(path.join(ws, '.haqa'));
  fs.symlinkSync(v.dir, path.join(ws, '.haqa', 'artifacts'));
  const store = new RunStore(ws);
  const r = await store.prune(0, 0);
  assert.deepEqual(r.removed, []);
  assert.ok(fs.existsSync(v.file), 'nothing outside the workspace is deleted');
  assert.ok(fs.existsSync(path.join(v.dir, 'bbbb')));

  const c = await cli(['runs', 'prune', '--keep', '0', '--dir', ws]);
  assert.equal(c.code, 0, c.err);
  assert.ok(fs.existsSync(v.file) && fs.existsSync(path.join(v.dir, 'bbbb')), 'the CLI deletes nothing there either');
});

test('prune: an artifact entry that links out is left alone; real stale artifacts still go', async () => {
  const ws = tempDir('haqa-prune-ws-');
  const v = victim();
  const arts = path.join(ws, '.haqa', 'artifacts');
  fs.mkdirSync(path.join(arts, 'stale'), { recursive: true });
  fs.writeFileSync(path.join(arts, 'stale', 'model.onnx'), 'x');
  fs.utimesSync(path.join(arts, 'stale'), HOUR_AGO, HOUR_AGO);
  fs.symlinkSync(path.join(v.dir, 'aaaa'), path.join(arts, 'link'));
  const r = await new RunStore(ws).prune(0, 0);
  assert.deepEqual(r.removed, ['stale']);
  assert.ok(fs.existsSync(v.file));
  assert.ok(fs.lstatSync(path.join(arts, 'link')).isSymbolicLink());
});

test('prune: .haqa itself a symlink out of the workspace is refused, and nothing there is deleted', async () => {
  const ws = tempDir('haqa-prune-ws-');
  const elsewhere = tempDir('haqa-elsewhere-');
  fs.mkdirSync(path.join(elsewhere, 'artifacts'));
  for (const name of ['cccc', 'dddd']) {
    fs.mkdirSync(path.join(elsewhere, 'artifacts', name));
    fs.writeFileSync(path.join(elsewhere, 'artifacts', name, 'precious.txt'), 'keep me');
    fs.utimesSync(path.join(elsewhere, 'artifacts', name), HOUR_AGO, HOUR_AGO);
  }
  fs.symlinkSync(elsewhere, path.join(ws, '.haqa'));
  await assert.rejects(
    new RunStore(ws).prune(0, 0),
    (e: Error) => e instanceof PathError && /outside the workspace/.test(e.message),
  );
  const c = await cli(['runs', 'prune', '--keep', '0', '--dir', ws]);
  assert.equal(c.code, 2);
  assert.match(c.err, /haqa runs: .*\.haqa resolves outside the workspace.*nothing pruned/);
  assert.ok(fs.existsSync(path.join(elsewhere, 'artifacts', 'cccc', 'precious.txt')));
  assert.ok(fs.existsSync(path.join(elsewhere, 'artifacts', 'dddd', 'precious.txt')));
});

test('the store reads and writes nothing through symlinks a repository committed into .haqa/', async () => {
  const ws = tempDir('haqa-store-ws-');
  const outside = tempDir('haqa-outside-');
  const target = path.join(outside, 'bashrc');
  fs.writeFileSync(target, 'export PATH=/usr/bin\n');
  fs.mkdirSync(path.join(ws, '.haqa', 'runs'), { recursive: true });
  fs.symlinkSync(target, path.join(ws, '.haqa', 'runs', 'runs.jsonl'));
  const store = new RunStore(ws);
  const r = store.read();
  assert.deepEqual(r.records, []);
  assert.match(r.skipped[0]?.reason ?? '', /outside the workspace/);
  await assert.rejects(store.append({ id: 'x', status: 'ok' } as never), /outside the workspace/);
  assert.equal(fs.readFileSync(target, 'utf8'), 'export PATH=/usr/bin\n', 'nothing appended outside');
  // A link to /dev/zero: refused at once, nothing read.
  fs.rmSync(path.join(ws, '.haqa', 'runs', 'runs.jsonl'));
  fs.symlinkSync('/dev/zero', path.join(ws, '.haqa', 'runs', 'runs.jsonl'));
  assert.deepEqual(store.read().records, []);
  // Artifacts and references are not built through a link out either.
  fs.symlinkSync(outside, path.join(ws, '.haqa', 'artifacts'));
  fs.symlinkSync(outside, path.join(ws, '.haqa', 'reference'));
  await assert.rejects(
    store.buildArtifact('k'.repeat(32), async () => {}),
    /outside the workspace/,
  );
  assert.throws(() => store.referencePath('abc'), /outside the workspace/);
  assert.deepEqual(fs.readdirSync(outside), ['bashrc']);
});

// ---------------------------------------------------------------- item 2: "not read" is not read

const GPTQ = 'quantize:\n  bits: 4\n  block_size: 16\n  method: gptq\n';

interface CheckRow {
  range: { start: { line: number; character: number } };
  code: string;
  message: string;
  severity: string;
}

async function checkRows(recipe: string): Promise<CheckRow[]> {
  return JSON.parse((await cli(['check', recipe, '--json'])).out) as CheckRow[];
}

test('calibration.text outside the workspace: check says "not read", quantize refuses (same code, words)', async () => {
  const dir = tempDir('haqa-ws-');
  await writeTinyModel(dir, { hidden: 32, intermediate: 48, layers: 1 });
  const secret = path.join(tempDir('haqa-secret-'), 'passwd');
  fs.writeFileSync(secret, 'root:x:0:0:root:/root:/bin/bash\n');
  const recipe = path.join(dir, 'haqa.yaml');
  fs.writeFileSync(recipe, `model: model.onnx\n${GPTQ}calibration:\n  text: ${secret}\n`);
  const row = (await checkRows(recipe)).find((d) => d.code === 'path-outside-workspace');
  assert.ok(row, 'the check warns');
  assert.match(row.message, /it is not read/);
  const q = await cli(['quantize', recipe]);
  assert.equal(q.code, 2, q.out);
  const at = `${recipe}:${row.range.start.line + 1}:${row.range.start.character + 1}`;
  assert.ok(q.err.includes(`${at} error path-outside-workspace ${row.message}`), q.err);
  assert.ok(!fs.existsSync(path.join(dir, 'model.haqa.onnx')), 'nothing written');
});

test('a model in another folder: check says "not read", quantize refuses it at model:', async () => {
  const modelDir = tempDir('haqa-models-');
  const model = await writeTinyModel(modelDir, { hidden: 32, intermediate: 48, layers: 1 });
  const dir = tempDir('haqa-ws-');
  const recipe = path.join(dir, 'haqa.yaml');
  fs.writeFileSync(recipe, `model: ${model}\nquantize:\n  bits: 4\n  block_size: 16\n`);
  const row = (await checkRows(recipe)).find((d) => d.code === 'model-outside-workspace');
  assert.ok(row);
  const q = await cli(['quantize', recipe]);
  assert.equal(q.code, 2);
  assert.ok(
    q.err.includes(`${recipe}:1:${row.range.start.character + 1} error model-outside-workspace ${row.message}`),
    q.err,
  );
  assert.ok(!fs.existsSync(path.join(dir, 'model.haqa.onnx')));
  // haqa tune refuses it in the same words, at the same place.
  const t = await cli(['tune', recipe]);
  assert.equal(t.code, 1);
  assert.ok(t.err.includes(`${recipe}:1:${row.range.start.character + 1}: ${row.message}`), t.err);
  // A model symlinked into the workspace is still outside it.
  fs.symlinkSync(model, path.join(dir, 'linked.onnx'));
  fs.writeFileSync(recipe, 'model: linked.onnx\nquantize:\n  bits: 4\n  block_size: 16\n');
  assert.ok((await checkRows(recipe)).some((d) => d.code === 'model-outside-workspace'));
  assert.equal((await cli(['quantize', recipe])).code, 2);
});

test("bench: evaluation.text outside the workspace is refused before anything runs, in the check's words", async () => {
  const dir = tempDir('haqa-ws-');
  await writeTinyModel(dir, { hidden: 32, intermediate: 48, layers: 1 });
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), '{}');
  const secret = path.join(tempDir('haqa-secret-'), 'eval.txt');
  fs.writeFileSync(secret, 'secret words '.repeat(100));
  const file = path.join(dir, 'haqa.yaml');
  fs.writeFileSync(file, `model: model.onnx\nquantize:\n  bits: 4\n  block_size: 16\nevaluation:\n  text: ${secret}\n`);
  const row = (await checkRows(file)).find((d) => d.code === 'path-outside-workspace');
  assert.ok(row);
  const doc = { model: 'model.onnx', quantize: { bits: 4, block_size: 16 }, evaluation: { text: secret } };
  const rec = await runRecipe(resolveRecipe(doc, file), { quick: true, noStore: true });
  assert.equal(rec.status, 'error');
  assert.equal(rec.error?.message, row.message);
  assert.deepEqual(rec.error?.recipe_path, ['evaluation', 'text']);
  assert.equal(rec.artifact, undefined, 'nothing was compressed');
  // haqa bench: the same refusal at evaluation.text's line:col, with the check's code.
  const b = await cli(['bench', file, '--quick', '--store', tempDir('haqa-store-')]);
  assert.equal(b.code, 1);
  const at = `${file}:${row.range.start.line + 1}:${row.range.start.character + 1}`;
  assert.ok(b.err.includes(`${at} error path-outside-workspace ${row.message}`), b.err);
  // One rule: named roots (the editor's workspace folders) widen what may be read, for the check and the engine alike.
  const r = resolveRecipe({ model: 'model.onnx', evaluation: { text: secret } }, file);
  assert.equal(recipeReadRefusal(r, recipeRoots(file))?.code, 'path-outside-workspace');
  assert.equal(recipeReadRefusal(r, recipeRoots(file, [dir, path.dirname(secret)])), undefined);
});

// ---------------------------------------------------------------- item 3: bounded reads

test(
  'bounded reads: /dev/zero and a FIFO are refused without blocking; a file over the cap is refused',
  { timeout: 20_000 },
  () => {
    const code = (c: string) => (e: Error) => e instanceof PathError && e.code === c;
    assert.throws(() => readRegularTextSync('/dev/zero', 'calibration text', 1 << 20), code('path-not-regular-file'));
    const dir = tempDir('haqa-reads-');
    const big = path.join(dir, 'big.txt');
    fs.writeFileSync(big, 'x'.repeat(4096));
    assert.throws(() => readRegularTextSync(big, 'evaluation text', 1000), code('file-too-large'));
    assert.equal(readRegularTextSync(big, 'evaluation text', 4096).length, 4096);
    if (haveMkfifo) {
      mkfifo(path.join(dir, 'fifo'));
      assert.throws(
        () => readRegularTextSync(path.join(dir, 'fifo'), 'tokenizer', 1 << 20),
        code('path-not-regular-file'),
      );
    }
  },
);

test(
  'calibration.text /dev/zero (or a link to it) is refused, never read into memory',
  { timeout: 30_000 },
  async () => {
    const dir = tempDir('haqa-ws-');
    await writeTinyModel(dir, { hidden: 32, intermediate: 48, layers: 1 });
    fs.symlinkSync('/dev/zero', path.join(dir, 'calib.txt')); // inside the workspace by name, a device in fact
    const recipe = path.join(dir, 'haqa.yaml');
    fs.writeFileSync(recipe, `model: model.onnx\n${GPTQ}calibration:\n  text: /dev/zero\n`);
    assert.ok((await checkRows(recipe)).some((d) => d.code === 'path-outside-workspace'));
    fs.writeFileSync(recipe, `model: model.onnx\n${GPTQ}calibration:\n  text: calib.txt\n`);
    // The link's target is outside the workspace too; with the device's folder named as a root it is still not a file.
    const doc = {
      model: 'model.onnx',
      quantize: { bits: 4, block_size: 16, method: 'gptq' },
      calibration: { text: 'calib.txt' },
    };
    const r = resolveRecipe(doc, recipe);
    await assert.rejects(
      compressModel(r, { out: path.join(dir, 'out.onnx'), roots: [dir, '/dev'] }),
      (e: Error) => e instanceof PathError && e.code === 'path-not-regular-file',
    );
    const q = await cli(['quantize', recipe]);
    assert.equal(q.code, 2);
    assert.match(q.err, /calibration text .*calib\.txt is outside the workspace/);
    assert.ok(!fs.existsSync(path.join(dir, 'model.haqa.onnx')));
  },
);

const FIFO_TEST = { skip: !haveMkfifo && 'no mkfifo', timeout: 30_000 };
const BOUNDED_RUN = { quick: true, noStore: true, timeoutMs: 60_000 };

test(
  'a FIFO as evaluation text or tokenizer: check errors, bench gives an error record instead of hanging',
  FIFO_TEST,
  async () => {
    const dir = tempDir('haqa-ws-');
    await writeTinyModel(dir, { hidden: 32, intermediate: 48, layers: 1 });
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), '{}');
    fs.writeFileSync(path.join(dir, 'eval.txt'), 'words '.repeat(100));
    mkfifo(path.join(dir, 'fifo'));
    const file = path.join(dir, 'haqa.yaml');
    fs.writeFileSync(file, 'model: model.onnx\nevaluation:\n  text: fifo\n  tokenizer: fifo\n');
    const rows = await checkRows(file);
    assert.equal(
      rows.filter((d) => d.code === 'path-not-regular-file' && d.severity === 'error').length,
      2,
      JSON.stringify(rows),
    );
    const base = { model: 'model.onnx', quantize: { bits: 4, block_size: 16 } };
    const text = await runRecipe(resolveRecipe({ ...base, evaluation: { text: 'fifo' } }, file), BOUNDED_RUN);
    assert.equal(text.status, 'error');
    assert.match(text.error!.message, /evaluation text .*fifo is not a regular file/);
    assert.deepEqual(text.error?.recipe_path, ['evaluation', 'text']);
    const tok = await runRecipe(
      resolveRecipe({ ...base, evaluation: { text: 'eval.txt', tokenizer: 'fifo' } }, file),
      BOUNDED_RUN,
    );
    assert.equal(tok.status, 'error');
    assert.match(tok.error!.message, /tokenizer .*fifo is not a regular file/);
    assert.deepEqual(tok.error?.recipe_path, ['evaluation', 'tokenizer']);
    // tokenizer.json beside the model as a FIFO (no evaluation.tokenizer): refused as well.
    fs.rmSync(path.join(dir, 'tokenizer.json'));
    mkfifo(path.join(dir, 'tokenizer.json'));
    const beside = await runRecipe(resolveRecipe({ ...base, evaluation: { text: 'eval.txt' } }, file), BOUNDED_RUN);
    assert.equal(beside.status, 'error');
    assert.match(beside.error!.message, /tokenizer .*not a regular file/);
  },
);

test("a FIFO as config.json beside the model does not hang the tuner's setup (loadSetting)", FIFO_TEST, async () => {
  const dir = tempDir('haqa-ws-');
  await writeTinyModel(dir, { hidden: 32, intermediate: 48, layers: 1 });
  mkfifo(path.join(dir, 'config.json'));
  const file = path.join(dir, 'haqa.yaml');
  fs.writeFileSync(file, 'model: model.onnx\nquantize:\n  bits: 4\n  block_size: 16\n');
  // In a child process with a deadline: a blocking read of a FIFO would stall this one's event loop for good.
  const SETTING_TS = path.resolve(__dirname, '../../server/src/agent/setting.ts');
  const code = `require(${JSON.stringify(SETTING_TS)}).loadSetting(${JSON.stringify(file)})
    .then((l) => { console.log(l.architecture === undefined ? 'no-arch' : 'arch'); process.exit(0); })`;
  const p = spawnSync(process.execPath, ['--import', 'tsx', '-e', code], { timeout: 30_000, encoding: 'utf8' });
  assert.equal(p.signal, null, 'it did not hang');
  assert.equal(p.status, 0, p.stderr);
  assert.match(p.stdout, /no-arch/);
});

// ---------------------------------------------------------------- item 4: external data

async function externalModel(dir: string): Promise<string> {
  const file = path.join(dir, 'model.onnx');
  await writeModel(tinyMlpModel({ hidden: 32, intermediate: 48, layers: 1 }), file, { externalData: true });
  assert.ok(fs.existsSync(`${file}.data`));
  return file;
}

test('external data: a location symlinked out of the model folder is refused, naming the tensor and file', async () => {
  const dir = tempDir('haqa-ext-');
  const model = await externalModel(dir);
  const secretDir = tempDir('haqa-secret-');
  // The secret holds exactly the bytes the tensors expect: only the policy can stop it, not a size check.
  fs.renameSync(`${model}.data`, path.join(secretDir, 'secret.bin'));
  fs.symlinkSync(path.join(secretDir, 'secret.bin'), `${model}.data`);
  // Reading the model validates its external data (model/validate.ts): refused before any tensor is read.
  await assert.rejects(
    readModel(model),
    (e: Error) =>
      /tensor \S+: external data file/.test(e.message) &&
      e.message.includes(`${model}.data`) &&
      /outside the model's folder/.test(e.message),
  );
  const recipe = path.join(dir, 'haqa.yaml');
  fs.writeFileSync(recipe, 'model: model.onnx\nquantize:\n  bits: 4\n  block_size: 16\n');
  const q = await cli(['quantize', recipe]);
  assert.equal(q.code, 2, q.out);
  assert.match(
    q.err,
    /tensor .*external data file .*model\.onnx\.data resolves to .*secret\.bin, outside the model's folder/,
  );
  assert.ok(!fs.existsSync(path.join(dir, 'model.haqa.onnx')), 'no output with the secret in it');
  await assert.rejects(hashModelFiles(model), /outside the model's folder/);
});

test(
  "external data that is a FIFO is refused by quantize and by the bench's hashing, without hanging",
  FIFO_TEST,
  async () => {
    const dir = tempDir('haqa-ext-');
    const model = await externalModel(dir);
    fs.rmSync(`${model}.data`);
    mkfifo(`${model}.data`);
    const r = resolveRecipe(
      { model: 'model.onnx', quantize: { bits: 4, block_size: 16 } },
      path.join(dir, 'haqa.yaml'),
    );
    await assert.rejects(
      compressModel(r, { out: path.join(dir, 'out.onnx') }),
      /external data file .*model\.onnx\.data is not a regular file/,
    );
    await assert.rejects(hashModelFiles(model), /not a regular file/);
    const rec = await runRecipe(r, BOUNDED_RUN);
    assert.equal(rec.status, 'error');
    assert.match(rec.error!.message, /not a regular file/);
  },
);

// ---------------------------------------------------------------- item 11: leftovers of killed writes

function deadPid(): number {
  const p = spawnSync(process.execPath, ['-e', '']);
  return p.pid!;
}

test('temp files of a killed writer are removed on the next write of that output; live ones are kept', async () => {
  const dir = tempDir('haqa-tmp-');
  const dead = deadPid();
  const stale = path.join(dir, `.out.json.${dead}.deadbeef.tmp`);
  const live = path.join(dir, `.out.json.${process.pid}.cafebabe.tmp`);
  const other = path.join(dir, `.other.json.${dead}.0badf00d.tmp`);
  for (const f of [stale, live, other]) fs.writeFileSync(f, 'half');
  await writeFileAtomic(path.join(dir, 'out.json'), '{}');
  assert.equal(fs.readFileSync(path.join(dir, 'out.json'), 'utf8'), '{}');
  assert.ok(!fs.existsSync(stale), "the dead writer's temp is gone");
  assert.ok(fs.existsSync(live), "a live writer's temp is kept");
  assert.ok(fs.existsSync(other), 'temps of other outputs are left to their own next write');

  // quantize's output and its external data file: the same.
  await writeTinyModel(dir, { hidden: 32, intermediate: 48, layers: 1 });
  const leftovers = [`.model.haqa.onnx.${dead}.12345678.tmp`, `.model.haqa.onnx.data.${dead}.9abcdef0.tmp`].map((n) =>
    path.join(dir, n),
  );
  for (const f of leftovers) fs.writeFileSync(f, 'half a model');
  fs.writeFileSync(path.join(dir, 'haqa.yaml'), 'model: model.onnx\nquantize:\n  bits: 4\n  block_size: 16\n');
  const q = await cli(['quantize', path.join(dir, 'haqa.yaml')]);
  assert.equal(q.code, 0, q.err);
  assert.deepEqual(
    leftovers.filter((f) => fs.existsSync(f)),
    [],
  );

  // prune removes those in the store whatever their output.
  const store = new RunStore(dir);
  fs.mkdirSync(store.referenceDir, { recursive: true });
  const ref = path.join(store.referenceDir, `.abc.json.${dead}.11111111.tmp`);
  fs.writeFileSync(ref, 'half');
  const r = await store.prune(0, 0);
  assert.ok(r.removed.includes(path.relative(store.root, ref)));
  assert.ok(!fs.existsSync(ref));
});
