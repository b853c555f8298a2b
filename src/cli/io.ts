/** Where a command writes: results to `out` (stdout), problems to `err` (stderr). Tests pass their own. */
export interface CommandIO {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  /** Whether `err` is a terminal (progress lines go only there). */
  readonly errIsTerminal?: boolean;
}

export const processIO: CommandIO = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
  errIsTerminal: process.stderr.isTTY,
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
