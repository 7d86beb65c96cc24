// Run features of the language server: the editor's doors into bench/ and agent/, one module per concern:
// - runJobs.ts: haqa/benchmark, haqa/tune, haqa/advise (progress, cancellation, refusals);
// - runEdits.ts: haqa/suggestionEdit, haqa/bestTrialEdit (one comment-keeping WorkspaceEdit);
// - runHistory.ts: haqa/runs (the results view), haqa/pruneRuns;
// - runLenses.ts: code lenses; runDiagnostics.ts: findings of the latest run;
// - runViews.ts: how a run is worded; runContext.ts: what they share.
// This file owns the feature's state and the haqa/trust notification: runs execute the workspace's model
// and may call an LLM, so they are refused unless the client says the workspace is trusted
// (initializationOptions.trusted, then haqa/trust notifications).
import type { ServerFeature } from './features';
import { Notifications, type TrustParams } from './protocol';
import { runsContext, type RunsState } from './runContext';
import { registerRunJobs } from './runJobs';
import { registerRunEdits } from './runEdits';
import { registerRunHistory } from './runHistory';
import { registerRunLenses } from './runLenses';
import { registerRunDiagnostics } from './runDiagnostics';

export function createRunsFeature(): ServerFeature {
  const state: RunsState = { trusted: false, bestByUri: new Map() };
  return {
    name: 'runs',
    capabilities(params) {
      state.trusted = (params.initializationOptions as { trusted?: boolean } | undefined)?.trusted === true;
      return { codeLensProvider: { resolveProvider: false } };
    },
    register(ctx) {
      ctx.connection.onNotification(Notifications.trust.method, (p: TrustParams) => {
        state.trusted = p?.trusted === true;
        ctx.connection.console.log(
          `haqa: workspace ${state.trusted ? 'trusted: runs enabled' : 'restricted: runs disabled'}`,
        );
      });
      const rc = runsContext(ctx, state);
      registerRunJobs(rc);
      registerRunEdits(rc);
      registerRunHistory(rc);
      registerRunLenses(rc);
      registerRunDiagnostics(rc);
    },
  };
}
