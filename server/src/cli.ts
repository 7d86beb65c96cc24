// `haqa`: the engine from the command line. Each subcommand is a module in ./cli. Every line any of them
// prints goes through displayText (util/sanitize): model files and the LLM cannot reach the terminal raw.
import { Command, CliIO, UsageError } from './cli/command';
import { displayText } from './util/sanitize';
import { OnnxError } from './model/onnx';
import { PathError } from './util/paths';
import { inspectCommand } from './cli/inspect';
import { checkCommand } from './cli/check';
import { synthCommand } from './cli/synth';
import { benchCommand } from './cli/bench';
import { runsCommand } from './cli/runs';
import { tuneCommand } from './cli/tune';
import { adviseCommand } from './cli/advise';
import { quantizeCommand } from './cli/quantize';
import { workerCommand } from './cli/worker';

const commands: Command[] = [
  checkCommand,
  inspectCommand,
  synthCommand,
  benchCommand,
  runsCommand,
  quantizeCommand,
  tuneCommand,
  adviseCommand,
  workerCommand,
];

function help(io: CliIO): void {
  io.out('haqa — hardware-aware quantization assistant\n');
  io.out('usage: haqa <command> [options]\n');
  for (const c of commands) io.out(`  ${c.name.padEnd(10)} ${c.summary}`);
  io.out('\nRun `haqa <command> --help` for its options.');
}

/** The same sink with every line made safe for a terminal (escapes visible, newlines kept; JSON stays JSON). */
export function safeIO(io: CliIO): CliIO {
  return { out: (l) => io.out(displayText(l)), err: (l) => io.err(displayText(l)), signal: io.signal };
}

export async function main(argv: string[], rawIO: CliIO): Promise<number> {
  const io = safeIO(rawIO);
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    help(io);
    return name ? 0 : 2;
  }
  const cmd = commands.find((c) => c.name === name);
  if (!cmd) {
    io.err(`haqa: unknown command '${name}'. Commands: ${commands.map((c) => c.name).join(', ')}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    io.out(`usage: ${cmd.usage}\n\n${cmd.summary}`);
    return 0;
  }
  try {
    return await cmd.run(rest, io);
  } catch (err) {
    if (err instanceof UsageError || err instanceof OnnxError || err instanceof PathError) {
      io.err(`haqa ${name}: ${err.message}`);
      return 2;
    }
    if ((err as Error).name === 'AbortError') {
      io.err(`haqa ${name}: cancelled`);
      return 130;
    }
    throw err;
  }
}

/** Process wiring: argv, stdout/stderr, Ctrl-C as cancellation, exit code. */
export function runCli(): void {
  const controller = new AbortController();
  process.on('SIGINT', () => {
    if (controller.signal.aborted) process.exit(130);
    controller.abort();
  });
  const io: CliIO = {
    out: (l) => process.stdout.write(l + '\n'),
    err: (l) => process.stderr.write(l + '\n'),
    signal: controller.signal,
  };
  main(process.argv.slice(2), io).then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      process.stderr.write(`haqa: internal error: ${displayText((err as Error).stack ?? err)}\n`);
      process.exitCode = 70;
    },
  );
}

if (require.main === module) runCli();
