/**
 * The gateway's clock: the shared one of `@apix/protocol/clock`, with real timers that do not keep the
 * process alive (`backgroundClock`) as `systemClock`.
 */
export { backgroundClock as systemClock, ManualClock } from '@apix/protocol/clock';
export type { Clock, Random, TimerHandle } from '@apix/protocol/clock';
