// What run requests need from the engine, in one module that the run feature imports on first use:
// it pulls in onnxruntime-node and the Anthropic SDK, which the server should not pay for at start-up
// (diagnostics, hovers and completions never need them).
export { runRecipe } from '../bench/run';
export { runOnTarget } from '../runner';
export { loadSetting, SettingError } from '../agent/setting';
export { adviseOffline, adviseWithClaude } from '../agent/advise';
export { objectiveOf } from '../agent/objective';
export { tune } from '../agent/session';
export { chooseProposer, isProposerName, proposerList } from '../agent/proposers';
export { kernelFacts, readKernelProbe } from '../bench/kernelProbe';
export { hardwareFingerprint } from '../bench/hardware';
