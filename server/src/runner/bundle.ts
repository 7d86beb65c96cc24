// What a trial needs on another device: the files its recipe reads (the model and its external data,
// config.json and tokenizer.json beside it, evaluation and calibration texts), each named by its sha256
// so a device receives a file once, and the recipe rewritten to name them where that device keeps them.
// The same bundle serves the SSH runner (files sent over SFTP) and the fleet (files carried through Redis).
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Recipe } from '../config/recipe';
import { SECTIONS } from '../config/methods';
import { decodeModel, externalRef, resolveExternal } from '../model/onnx';
import { fileRefusal, recipeReadRefusal, recipeRoots } from '../util/paths';
import { compresses, usesCalibration } from '../bench/record';

export interface BundleFile {
  /** Where the file is here. */
  local: string;
  /** Path inside the trial's folder on the device (`model/model.onnx`, `data/eval-<sha>.txt`). */
  name: string;
  sha256: string;
  bytes: number;
}

export interface Bundle {
  files: BundleFile[];
  /** A recipe document (JSON is YAML) naming the files by `name`, relative to the trial's folder. */
  doc: Record<string, unknown>;
  /** Key of the trial's folder: the hash of every file's name and content. */
  key: string;
}

async function sha256File(file: string): Promise<{ sha256: string; bytes: number }> {
  const h = createHash('sha256');
  let bytes = 0;
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 4 << 20 })) {
    h.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { sha256: h.digest('hex'), bytes };
}

const memo = new Map<string, { sha256: string; bytes: number }>();

/** sha256 of a file, memoised per (path, size, mtime): trials of one search send the same model. */
export async function contentHash(file: string): Promise<{ sha256: string; bytes: number }> {
  const refused = fileRefusal(file, 'file');
  if (refused) throw refused;
  const st = await fs.promises.stat(file);
  const id = `${path.resolve(file)}\0${st.size}\0${st.mtimeMs}`;
  let v = memo.get(id);
  if (!v) memo.set(id, (v = await sha256File(file)));
  return v;
}

/** The bundle of a recipe; files the path policy (util/paths.ts) does not read here are not sent either. */
export async function recipeBundle(
  recipe: Recipe,
  roots: readonly string[] = recipeRoots(recipe.file),
): Promise<Bundle> {
  const refused = recipeReadRefusal(recipe, roots, {
    model: true,
    calibration: compresses(recipe) && usesCalibration(recipe),
    evaluation: true,
  });
  if (refused) throw refused;
  const files: BundleFile[] = [];
  const add = async (local: string, name: string) => {
    const h = await contentHash(local);
    files.push({ local, name, ...h });
    return name;
  };
  const dir = path.dirname(recipe.model);
  const model = await add(recipe.model, `model/${path.basename(recipe.model)}`);
  const proto = decodeModel(await fs.promises.readFile(recipe.model), recipe.model);
  const locations = new Set<string>();
  for (const t of proto.graph?.initializer ?? []) {
    const ext = externalRef(t);
    if (ext) locations.add(ext.location);
  }
  for (const l of [...locations].sort()) {
    const full = resolveExternal(dir, l); // refuses locations out of the model's folder
    await add(full, `model/${path.relative(dir, full).split(path.sep).join('/')}`);
  }
  for (const beside of ['config.json', 'tokenizer.json']) {
    const f = path.join(dir, beside);
    if (fs.existsSync(f) && !fileRefusal(f, beside)) await add(f, `model/${beside}`);
  }
  const text = async (f: string | undefined, kind: string) => {
    if (f === undefined) return undefined;
    const h = await contentHash(f);
    return add(f, `data/${kind}-${h.sha256.slice(0, 16)}${path.extname(f)}`);
  };
  const doc: Record<string, unknown> = {
    version: 1,
    model,
    target: {
      provider: recipe.target.provider,
      threads: recipe.target.threads,
      memory_limit: recipe.target.memory_limit,
    },
    objective: recipe.objective,
    ...Object.fromEntries(SECTIONS.map((s) => [s.name, recipe[s.name]])),
    calibration: { ...recipe.calibration, text: await text(recipe.calibration.text, 'calibration') },
    evaluation: {
      ...recipe.evaluation,
      text: await text(recipe.evaluation.text, 'evaluation'),
      tokenizer: await text(recipe.evaluation.tokenizer, 'tokenizer'),
    },
    search: recipe.search,
  };
  const key = createHash('sha256')
    .update(files.map((f) => `${f.name}\0${f.sha256}`).join('\n'))
    .digest('hex')
    .slice(0, 32);
  return { files, doc: JSON.parse(JSON.stringify(doc)), key };
}
