/**
 * A value bound after construction. The composition root (node.ts) builds the components that call back
 * into one built after them (the retry manager, the pending journal and the hub call the gateway): it gives
 * them a `Late` and the later component binds it once, in its constructor. Using it before then throws.
 */
import { InternalError } from '@apix/protocol/internal-errors';

export class Late<T> {
  private bound: { readonly value: T } | undefined;

  constructor(private readonly what: string) {}

  bind(value: T): void {
    if (this.bound) throw new InternalError('APIX_ERR_INVALID_ARGUMENT', `${this.what} is bound twice`);
    this.bound = { value };
  }

  get value(): T {
    if (!this.bound)
      throw new InternalError('APIX_ERR_INVALID_ARGUMENT', `${this.what} is used before it is bound`);
    return this.bound.value;
  }
}
