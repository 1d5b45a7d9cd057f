/**
 * A bound shared by every client of the HTTP API, of which one token may take only part, so that one
 * holder of a token cannot turn all the others away: log streams open, bytes of request bodies held.
 */
export class SharedBudget {
  private used = 0;
  private readonly byOwner = new Map<string, number>();

  constructor(
    readonly max: number,
    /** What one owner (a token's name) may hold of it. */
    readonly perOwner: number,
  ) {}

  /** Takes `amount` for `owner` if both bounds allow it, and says so; nothing is taken otherwise. */
  take(owner: string, amount: number): boolean {
    const held = this.byOwner.get(owner) ?? 0;
    if (this.used + amount > this.max || held + amount > this.perOwner) return false;
    this.used += amount;
    this.byOwner.set(owner, held + amount);
    return true;
  }

  /** Gives back what `take` took. */
  give(owner: string, amount: number): void {
    this.used -= amount;
    const left = (this.byOwner.get(owner) ?? 0) - amount;
    if (left > 0) this.byOwner.set(owner, left);
    else this.byOwner.delete(owner);
  }
}
