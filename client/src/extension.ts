// Placeholder until the client lands (issue 7 owns this file).
import type * as vscode from 'vscode';
export function activate(_context: vscode.ExtensionContext): void {}
export function deactivate(): void {}
