// The Anthropic API key lives in VS Code's SecretStorage (the OS keychain where there is one) — never in
// settings, never in the log. ANTHROPIC_API_KEY in the environment is the fallback, as the CLI does.
import type * as vscode from 'vscode';

const KEY = 'haqa.anthropicApiKey';

export class ApiKey {
  constructor(private readonly secrets: vscode.SecretStorage) {}

  async get(): Promise<string | undefined> {
    return (await this.secrets.get(KEY)) || process.env.ANTHROPIC_API_KEY || undefined;
  }

  set(value: string): Thenable<void> {
    return this.secrets.store(KEY, value);
  }

  /** Whether a key was stored in SecretStorage (the environment's key is not ours to clear). */
  async stored(): Promise<boolean> {
    return !!(await this.secrets.get(KEY));
  }

  /** Removes the stored key; false when none was stored. */
  async clear(): Promise<boolean> {
    const had = await this.stored();
    if (had) await this.secrets.delete(KEY);
    return had;
  }
}
