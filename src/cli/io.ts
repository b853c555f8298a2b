/** Where a command writes: results to `out` (stdout), problems to `err` (stderr). Tests pass their own. */
export interface CommandIO {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}

export const processIO: CommandIO = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

/** A command called wrongly: printed with its help, exit status 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  readonly help: string;
  constructor(message: string, help: string) {
    super(message);
    this.help = help;
  }
}
