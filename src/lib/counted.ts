/** "1 object", "3 objects": a count with its noun, for log lines people read. */
export function counted(count: number, noun: string): string {
  return `${count} ${count === 1 ? noun : `${noun}s`}`;
}
