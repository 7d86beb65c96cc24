// haqa inspect <model.onnx> [--json]: the compressible layers of a model, read from the graph alone.
// Names, op types and dtypes come from the file: each is printed as one escaped line (lineText).
import { Command, parse, UsageError, humanBytes, humanCount, table } from './command';
import { inspectModel } from '../model/graph';
import { lineText } from '../util/sanitize';

const usage = 'haqa inspect <model.onnx> [--json]';

export const inspectCommand: Command = {
  name: 'inspect',
  summary: 'list the compressible layers of an ONNX model (name, op, K, N, parameters, dtype)',
  usage,
  async run(argv, io) {
    const { values, positionals } = parse(argv, { json: { type: 'boolean' } }, usage);
    if (positionals.length !== 1) throw new UsageError(`expected one model file\nusage: ${usage}`);
    const g = await inspectModel(positionals[0]);
    if (values.json) {
      io.out(JSON.stringify(g, null, 2));
      return 0;
    }
    io.out(lineText(g.path));
    const opsets = Object.entries(g.opsets)
      .map(([d, v]) => `${lineText(d)}=${v}`)
      .join(' ');
    io.out(`  ir ${g.irVersion}, opsets ${opsets}, ${g.nodeCount} nodes${g.usesExternalData ? ', external data' : ''}`);
    const ios = (list: typeof g.inputs) =>
      list.map((i) => `${lineText(i.name)} ${lineText(i.dtype)}[${lineText(i.shape.join(','))}]`).join('  ');
    io.out(`  inputs:  ${ios(g.inputs)}`);
    io.out(`  outputs: ${ios(g.outputs)}`);
    io.out('');
    const rows: (string | number)[][] = [['layer', 'op', 'K', 'N', 'params', 'dtype', 'bytes']];
    for (const l of g.layers) {
      rows.push([
        lineText(l.name),
        lineText(l.op),
        l.K,
        l.N,
        humanCount(l.params),
        lineText(l.dtype),
        humanBytes(l.bytes),
      ]);
    }
    for (const line of table(rows, [2, 3, 4, 6])) io.out(line);
    io.out('');
    io.out(
      `${g.layers.length} compressible layers, ${humanCount(g.totals.layerParams)} of ` +
        `${humanCount(g.totals.params)} parameters ` +
        `(${humanBytes(g.totals.layerBytes)} of ${humanBytes(g.weightBytes)} weights)`,
    );
    return 0;
  },
};
