// Bundles the extension client, the language server, the CLI, the benchmark worker and the compression thread.
// onnxruntime-node stays external: it ships native binaries that must be loaded from node_modules. So do
// node-llama-cpp, ssh2, bullmq and ioredis (optional native parts; loaded only when their runtime or runner is used).
import * as esbuild from 'esbuild';

const production = process.argv.includes('--production');
const watch = process.argv.includes('--watch');
// --outdir=DIR writes the bundles elsewhere (scripts/package.mjs builds into its staging folder, not dist/).
const outdir = process.argv.find((a) => a.startsWith('--outdir='))?.slice('--outdir='.length) ?? 'dist';

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: !production,
  minify: production,
  logLevel: 'warning',
  external: ['onnxruntime-node', 'node-llama-cpp', 'ssh2', 'bullmq', 'ioredis'],
};

const entries = [
  {
    entryPoints: ['client/src/extension.ts'],
    outfile: `${outdir}/client.js`,
    external: ['vscode', 'onnxruntime-node'],
  },
  { entryPoints: ['server/src/server.ts'], outfile: `${outdir}/server.js` },
  { entryPoints: ['server/src/cli.ts'], outfile: `${outdir}/cli.js` },
  { entryPoints: ['server/src/bench/worker.ts'], outfile: `${outdir}/worker.js` },
  { entryPoints: ['server/src/compress/layerWorker.ts'], outfile: `${outdir}/layerWorker.js` },
];

const contexts = await Promise.all(entries.map((e) => esbuild.context({ ...common, ...e })));
if (watch) {
  await Promise.all(contexts.map((c) => c.watch()));
} else {
  await Promise.all(contexts.map((c) => c.rebuild()));
  await Promise.all(contexts.map((c) => c.dispose()));
}
