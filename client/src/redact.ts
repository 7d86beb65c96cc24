// The protocol trace (haqa.trace.server = verbose) prints request params, and tune/advise params carry
// the API key: this channel wraps the log and blanks the key before anything is written.
import type * as vscode from 'vscode';

const KEY_FIELD = /("apiKey"\s*:\s*")[^"]*(")/g;
const WRITERS = new Set(['append', 'appendLine', 'replace', 'trace', 'debug', 'info', 'warn', 'error']);

export function redact(text: string): string {
  return text.replace(KEY_FIELD, '$1***$2');
}

export function redactingChannel(inner: vscode.LogOutputChannel): vscode.LogOutputChannel {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (typeof prop === 'string' && WRITERS.has(prop) && typeof v === 'function') {
        return (first: unknown, ...rest: unknown[]) =>
          v.call(target, typeof first === 'string' ? redact(first) : first, ...rest);
      }
      if (prop === 'dispose') return () => {}; // the log is disposed by its owner
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}
