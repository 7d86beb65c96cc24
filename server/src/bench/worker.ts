// Placeholder until the benchmark worker lands (issue 5 owns this file).
export {};
