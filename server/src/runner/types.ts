// The runner seam: where a trial runs. A trial job is what the tuner and `haqa bench` hand to
// bench/run.ts today (a resolved recipe and the run options); a runner compresses and measures it on its
// device — this machine's worker process (./local.ts), a host over SSH (./ssh.ts), or a fleet queue
// (./queue.ts) — streams progress, can be cancelled, and returns the RunRecord with the device that ran it.
import type { Recipe } from '../config/recipe';
import type { RunProgress } from '../bench/run';
import type { HardwareFingerprint, RunRecord, RunStage, TrialInfo } from '../bench/record';
import type { RaceAgainst, RaceSettings } from '../bench/race';

/** Plain JSON: it crosses SSH and Redis as it is. */
export interface TrialJob {
  recipe: Recipe;
  quick?: boolean;
  baseline?: boolean;
  measure?: { latency?: boolean; accuracy?: boolean };
  trial?: TrialInfo;
  /** Wall-clock limit of the whole run, ms. */
  timeoutMs?: number;
  /** Test hooks for the worker (honoured only with HAQA_BENCH_TEST_HOOKS=1 where it runs). */
  debug?: { hangAt?: RunStage };
  /** A stated accuracy reference (`haqa bench --reference`, bench/reference.ts): a path on the device. */
  reference?: string;
  /**
   * The tuner's paired race against fp32 (bench/race.ts). The local runner races; the SSH and queue
   * runners measure unpaired for now (their `haqa bench` has no race option), which the record says.
   */
  race?: RaceSettings;
  /** A duel's incumbent (bench/run.ts RunOptions.raceAgainst): local runs only, like the race. */
  raceAgainst?: RaceAgainst;
}

export interface RunnerOptions {
  signal?: AbortSignal;
  onProgress?: (p: RunProgress) => void;
  /** Workspace whose `.haqa/` receives the record (default: the recipe's folder). */
  storeDir?: string;
  /** Don't append the record (the caller will). */
  noStore?: boolean;
}

export interface Runner {
  /** 'local', 'ssh', 'queue': the key of its row in RUNNERS (./index.ts). */
  readonly kind: string;
  /** The device as records name it (no credentials). */
  readonly host: string;
  /** The device's hardware, for the advisor, the agent's priors and the record. */
  profile(signal?: AbortSignal): Promise<HardwareFingerprint>;
  /** Never rejects for a failed run: the record's status says what happened. */
  run(job: TrialJob, opts?: RunnerOptions): Promise<RunRecord>;
  /** Frees connections; further runs are refused. */
  close(): Promise<void>;
}

/** Settings that are not in the recipe: nothing secret ever is (keys stay in the agent or a key file). */
export interface RunnerConfig {
  /** SSH: known_hosts file to verify host keys against (default ~/.ssh/known_hosts). */
  knownHosts?: string;
  /** SSH: private key file (default: the SSH agent at SSH_AUTH_SOCK, then ~/.ssh/id_ed25519, id_rsa). */
  identityFile?: string;
  /** SSH: folder on the remote for the worker, the model cache and the remote store (default ~/.cache/haqa). */
  remoteDir?: string;
  /** Queue: how long to wait for one trial's record, ms (default: the job's timeout plus 10 minutes). */
  waitMs?: number;
}

export class RunnerError extends Error {
  constructor(
    message: string,
    readonly host: string,
  ) {
    super(message);
    this.name = 'RunnerError';
  }
}
