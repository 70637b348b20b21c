// A failure meant for a person: one line, and the exit code the program ends with.
export class UserError extends Error {
  exitCode: number;
  constructor(message: string, exitCode: number) {
    super(message);
    this.exitCode = exitCode;
  }
}
