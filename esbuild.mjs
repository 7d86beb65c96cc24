// Bundles the extension client, the language server, the CLI, the benchmark worker and the compression thread.
// onnxruntime-node stays external: it ships native binaries that must be loaded from node_modules. So do
// node-llama-cpp, ssh2, bullmq and ioredis (optional native parts; loaded only when their runtime or runner is used).
import * as esbuild from 'esbuild';

const production = process.argv.includes('--production');
const watch = process.argv.includes('--watch');

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
  { entryPoints: ['client/src/extension.ts'], outfile: 'dist/client.js', external: ['vscode', 'onnxruntime-node'] },
  { entryPoints: ['server/src/server.ts'], outfile: 'dist/server.js' },
  { entryPoints: ['server/src/cli.ts'], outfile: 'dist/cli.js' },
  { entryPoints: ['server/src/bench/worker.ts'], outfile: 'dist/worker.js' },
  { entryPoints: ['server/src/compress/layerWorker.ts'], outfile: 'dist/layerWorker.js' },
];

const contexts = await Promise.all(entries.map((e) => esbuild.context({ ...common, ...e })));
if (watch) {
  await Promise.all(contexts.map((c) => c.watch()));
} else {
  await Promise.all(contexts.map((c) => c.rebuild()));
  await Promise.all(contexts.map((c) => c.dispose()));
}
