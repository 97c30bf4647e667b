import path from 'node:path';

/** An empty allow-list allows any command; otherwise the command as given or its basename must be listed. */
export function isCommandAllowed(command: string, allow: readonly string[]): boolean {
  if (allow.length === 0) return true;
  return allow.includes(command) || allow.includes(path.basename(command));
}
