// Placeholder until the language server lands (issue 2 owns this file).
export {};
