// Runner settings that are not in the recipe, from the environment (the CLI and the editor read them
// here): HAQA_SSH_KNOWN_HOSTS, HAQA_SSH_IDENTITY (a key file; the SSH agent needs none), HAQA_REMOTE_DIR.
import type { RunnerConfig } from './types';

export function runnerConfigFromEnv(env: NodeJS.ProcessEnv = process.env): RunnerConfig {
  return {
    knownHosts: env.HAQA_SSH_KNOWN_HOSTS || undefined,
    identityFile: env.HAQA_SSH_IDENTITY || undefined,
    remoteDir: env.HAQA_REMOTE_DIR || undefined,
  };
}
